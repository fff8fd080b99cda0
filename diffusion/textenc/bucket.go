package textenc

import "math"

// RelativePositionBucket maps a relative position (key − query) to a bucket,
// as Hugging Face's T5Attention._relative_position_bucket does for a
// bidirectional encoder (Raffel et al. 2020, §2.1): half the buckets are
// for keys after the query; within each half, distances below
// buckets/4 get a bucket each and larger ones share logarithmically wider
// buckets up to maxDistance, beyond which all fall in the last bucket.
func RelativePositionBucket(rel, buckets, maxDistance int) int {
	n := buckets / 2
	b := 0
	if rel > 0 {
		b = n
	}
	if rel < 0 {
		rel = -rel
	}
	exact := n / 2
	if rel < exact {
		return b + rel
	}
	// Computed in float32 as torch does (relative_position.float()), then
	// truncated toward zero by .to(torch.long).
	f := float32(math.Log(float64(float32(rel)/float32(exact)))) / float32(math.Log(float64(maxDistance)/float64(exact))) * float32(n-exact)
	large := exact + int(f)
	return b + min(large, n-1)
}
