package cpu

// Packing copies blocks of op(A) and op(B) into the layout the
// micro-kernels read: contiguous, in the order of use, zero-padded to whole
// tiles. A block is mr- (or nr-) wide micro-panels, each holding w values
// per k. Two shapes of copy occur:
//   - packRows: the w values of one k are contiguous in the source (A
//     transposed, B not): one short copy per k.
//   - packCols: the w values of one k are w different source rows (A not
//     transposed, B transposed): a transpose, done 4 source rows at a time
//     so that the reads stay sequential and each write fills 16 bytes.

// packA copies rows [i0, i0+mb) and columns [p0, p0+kb) of op(A) into dst
// as mr-row micro-panels, zero-padding the last one to mr rows.
func packA(dst []float32, mr int, asm, trans bool, a []float32, lda, i0, mb, p0, kb int) {
	for ip := 0; ip < mb; ip += mr {
		rows := min(mr, mb-ip)
		panel := dst[ip*kb : ip*kb+mr*kb]
		if trans {
			// op(A)[i][p] = a[p*lda+i]
			packRows(panel, mr, a[p0*lda+i0+ip:], lda, rows, kb)
		} else {
			packCols(panel, mr, asm, a[(i0+ip)*lda+p0:], lda, rows, kb)
		}
	}
}

// packB copies rows [p0, p0+kb) and columns [j0, j0+nb) of op(B) into dst
// as nr-column micro-panels, zero-padding the last one to nr columns.
func packB(dst []float32, nr int, asm, trans bool, b []float32, ldb, p0, kb, j0, nb int) {
	for jp := 0; jp < nb; jp += nr {
		cols := min(nr, nb-jp)
		panel := dst[jp*kb : jp*kb+nr*kb]
		if trans {
			// op(B)[p][j] = b[j*ldb+p]
			packCols(panel, nr, asm, b[(j0+jp)*ldb+p0:], ldb, cols, kb)
		} else {
			packRows(panel, nr, b[p0*ldb+j0+jp:], ldb, cols, kb)
		}
	}
}

// packRows sets dst[p*w+r] = src[p*lds+r] for r < cnt, and 0 for
// cnt <= r < w, for every p < kb.
func packRows(dst []float32, w int, src []float32, lds, cnt, kb int) {
	if cnt == w {
		// Whole tiles: fixed-size copies, which compile to a few vector moves.
		switch w {
		case 32:
			for p := range kb {
				*(*[32]float32)(dst[p*32:]) = [32]float32(src[p*lds:])
			}
			return
		case 16:
			for p := range kb {
				*(*[16]float32)(dst[p*16:]) = [16]float32(src[p*lds:])
			}
			return
		case 12:
			for p := range kb {
				*(*[12]float32)(dst[p*12:]) = [12]float32(src[p*lds:])
			}
			return
		case 6:
			for p := range kb {
				*(*[6]float32)(dst[p*6:]) = [6]float32(src[p*lds:])
			}
			return
		case 4:
			for p := range kb {
				*(*[4]float32)(dst[p*4:]) = [4]float32(src[p*lds:])
			}
			return
		}
	}
	for p := range kb {
		d := dst[p*w : p*w+w]
		copy(d, src[p*lds:p*lds+cnt])
		clear(d[cnt:])
	}
}

// packCols sets dst[p*w+r] = src[r*lds+p] for r < cnt, and 0 for
// cnt <= r < w, for every p < kb.
// With asm, packCols4 does what it can of each group of 4 rows.
func packCols(dst []float32, w int, asm bool, src []float32, lds, cnt, kb int) {
	dst = dst[:w*kb]
	r := 0
	for ; r+4 <= cnt; r += 4 {
		p0 := 0
		if asm {
			p0 = packCols4(dst[r:], w, src[r*lds:], lds, kb)
		}
		s0 := src[r*lds:][:kb]
		s1 := src[(r+1)*lds:][:kb]
		s2 := src[(r+2)*lds:][:kb]
		s3 := src[(r+3)*lds:][:kb]
		for p := p0; p < kb; p++ {
			d := (*[4]float32)(dst[p*w+r:])
			d[0], d[1], d[2], d[3] = s0[p], s1[p], s2[p], s3[p]
		}
	}
	for ; r < cnt; r++ {
		s := src[r*lds:][:kb]
		for p, v := range s {
			dst[p*w+r] = v
		}
	}
	for ; r < w; r++ {
		for p := range kb {
			dst[p*w+r] = 0
		}
	}
}
