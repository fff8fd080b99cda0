package otel_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/omniflow-go/omniflow/profiler"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// traceReceiver is an OTLP/gRPC trace receiver that keeps what it gets.
type traceReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func (r *traceReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, proto.Clone(req).(*collectortrace.ExportTraceServiceRequest))
	r.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// startReceiver serves a traceReceiver on a free local port until the test
// ends.
func startReceiver(t *testing.T) (*traceReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &traceReceiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, recv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("grpc Serve: %v", err)
		}
	})
	return recv, lis.Addr().String()
}

// wireSpan is a span as it arrived, with its resource and scope.
type wireSpan struct {
	span     *tracepb.Span
	resource map[string]string
	scope    *commonpb.InstrumentationScope
}

// TestOTLPWire exports a profiling session through the SDK's batch
// processor and the real OTLP/gRPC exporter to an in-process receiver, and
// checks what arrived on the wire against the records.
func TestOTLPWire(t *testing.T) {
	recv, addr := startReceiver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(addr))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "omniflow-test"), attribute.String("deployment.environment", "ci"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	remote := remoteSpanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
	sink := otelsink.New(tp, otelsink.WithSessionSpan(true))
	sink.SetRequestParent("req-2", remote)

	sess := runSession(t, 3, 25, sink)
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("tp.Shutdown: %v", err)
	}

	recv.mu.Lock()
	reqs := recv.reqs
	recv.mu.Unlock()
	var wire []wireSpan
	for _, req := range reqs {
		for _, rs := range req.GetResourceSpans() {
			resAttrs := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				resAttrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					wire = append(wire, wireSpan{span: sp, resource: resAttrs, scope: ss.GetScope()})
				}
			}
		}
	}
	if len(wire) == 0 {
		t.Fatalf("nothing arrived (%d requests)", len(reqs))
	}

	info := sess.Info
	var session *tracepb.Span
	byKey := map[spanKey]*tracepb.Span{}
	for _, w := range wire {
		if got := w.resource; got["service.name"] != "omniflow-test" || got["deployment.environment"] != "ci" {
			t.Fatalf("resource %v", got)
		}
		if w.scope.GetName() != otelsink.DefaultTracerName || w.scope.GetVersion() != profiler.Version {
			t.Fatalf("scope %v", w.scope)
		}
		sp := w.span
		if sp.GetName() == "omniflow.profile "+info.Name {
			session = sp
			continue
		}
		var req string
		for _, kv := range sp.GetAttributes() {
			if kv.GetKey() == string(otelsink.KeyRequestID) {
				req = kv.GetValue().GetStringValue()
			}
		}
		k := spanKey{sp.GetName(), req, int64(sp.GetStartTimeUnixNano()), int64(sp.GetEndTimeUnixNano())}
		if _, dup := byKey[k]; dup {
			t.Fatalf("two spans %v", k)
		}
		byKey[k] = sp
	}
	if session == nil {
		t.Fatal("no session span on the wire")
	}
	if len(session.GetParentSpanId()) != 0 || session.GetStartTimeUnixNano() != uint64(info.Started.UnixNano()) {
		t.Errorf("session span: parent %x, start %d, want none and %d", session.GetParentSpanId(), session.GetStartTimeUnixNano(), info.Started.UnixNano())
	}

	recs := sess.Records()
	spanOf := map[uint64]*tracepb.Span{}
	for i := range recs {
		r := &recs[i]
		if !r.Kind.IsSpan() {
			continue
		}
		k := recordKey(info, r)
		sp, ok := byKey[k]
		if !ok {
			t.Fatalf("record %q (id %d) did not arrive", r.Name, r.ID)
		}
		delete(byKey, k)
		spanOf[r.ID] = sp
	}
	if len(byKey) != 0 {
		t.Errorf("%d spans arrived without a record", len(byKey))
	}

	// A request's first root operator slice heads its trace; its other
	// roots are children of it (see WithMaxRequestTraces).
	reqRoot := map[string]*tracepb.Span{}
	for i := range recs {
		r := &recs[i]
		if sp := spanOf[r.ID]; r.Kind == profiler.KindOperator && r.Parent == 0 && r.Request != "req-2" &&
			bytes.Equal(sp.GetParentSpanId(), session.GetSpanId()) {
			if reqRoot[r.Request] != nil {
				t.Errorf("request %s: two operator slices at the top of its trace", r.Request)
			}
			reqRoot[r.Request] = sp
		}
	}

	var nevents, wantEvents int
	for i := range recs {
		r := &recs[i]
		if r.Kind == profiler.KindInstant {
			wantEvents++
			ev := findEvent(spanOf[r.Parent], r.Name, uint64(info.Wall(r.Start).UnixNano()))
			if ev == nil {
				t.Errorf("instant %q at %d not on its span %q", r.Name, info.Wall(r.Start).UnixNano(), spanOf[r.Parent].GetName())
			} else if got, want := wireAttrs(ev.GetAttributes()), attrMap(recordAttrs(r)); !maps.Equal(got, want) {
				t.Errorf("instant %q: attributes %v, want %v", r.Name, got, want)
			}
			continue
		}
		if !r.Kind.IsSpan() {
			continue
		}
		sp := spanOf[r.ID]
		nevents += len(sp.GetEvents())
		if got, want := sp.GetStartTimeUnixNano(), uint64(info.Wall(r.Start).UnixNano()); got != want {
			t.Errorf("%q: start %d, want %d", r.Name, got, want)
		}
		if got, want := sp.GetEndTimeUnixNano(), uint64(info.Wall(r.End).UnixNano()); got != want {
			t.Errorf("%q: end %d, want %d", r.Name, got, want)
		}
		if sp.GetKind() != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("%q: kind %v", r.Name, sp.GetKind())
		}
		var wantTrace, wantParent []byte
		switch {
		case r.Parent != 0:
			wantTrace, wantParent = spanOf[r.Parent].GetTraceId(), spanOf[r.Parent].GetSpanId()
		case r.Request == "req-2":
			tid, sid := remote.TraceID(), remote.SpanID()
			wantTrace, wantParent = tid[:], sid[:]
		case r.Request != "" && sp != reqRoot[r.Request] && (r.Kind == profiler.KindOperator ||
			bytes.Equal(sp.GetParentSpanId(), reqRoot[r.Request].GetSpanId())):
			wantTrace, wantParent = reqRoot[r.Request].GetTraceId(), reqRoot[r.Request].GetSpanId()
		default:
			wantTrace, wantParent = session.GetTraceId(), session.GetSpanId()
		}
		if !bytes.Equal(sp.GetParentSpanId(), wantParent) || !bytes.Equal(sp.GetTraceId(), wantTrace) {
			t.Errorf("%q (id %d, parent %d): trace/parent %s/%s, want %s/%s", r.Name, r.ID, r.Parent,
				hex.EncodeToString(sp.GetTraceId()), hex.EncodeToString(sp.GetParentSpanId()),
				hex.EncodeToString(wantTrace), hex.EncodeToString(wantParent))
		}
		if got, want := wireAttrs(sp.GetAttributes()), attrMap(spanAttrs(r)); !maps.Equal(got, want) {
			t.Errorf("%q: attributes\n got %v\nwant %v", r.Name, got, want)
		}
		if a, ok := r.Attr("error"); ok {
			if st := sp.GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != a.AsString() {
				t.Errorf("%q: status %v, want error %q", r.Name, st, a.AsString())
			}
		}
	}
	if nevents != wantEvents || wantEvents == 0 {
		t.Errorf("%d events on the wire, want %d", nevents, wantEvents)
	}
	if st := sink.Stats(); st.Dropped != 0 || st.DroppedEvents != 0 || st.Orphans != 0 {
		t.Errorf("stats %+v", st)
	}
}

func findEvent(sp *tracepb.Span, name string, at uint64) *tracepb.Span_Event {
	for _, ev := range sp.GetEvents() {
		if ev.GetName() == name && ev.GetTimeUnixNano() == at {
			return ev
		}
	}
	return nil
}

// wireAttrs renders OTLP attributes as attrMap renders the API's.
func wireAttrs(kvs []*commonpb.KeyValue) map[string]string {
	var out []attribute.KeyValue
	for _, kv := range kvs {
		k := attribute.Key(kv.GetKey())
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out = append(out, k.String(v.StringValue))
		case *commonpb.AnyValue_IntValue:
			out = append(out, k.Int64(v.IntValue))
		case *commonpb.AnyValue_DoubleValue:
			out = append(out, k.Float64(v.DoubleValue))
		case *commonpb.AnyValue_BoolValue:
			out = append(out, k.Bool(v.BoolValue))
		case *commonpb.AnyValue_ArrayValue:
			var ints []int64
			for _, e := range v.ArrayValue.GetValues() {
				ints = append(ints, e.GetIntValue())
			}
			out = append(out, k.Int64Slice(ints))
		default:
			out = append(out, k.String("<unexpected>"))
		}
	}
	return attrMap(out)
}
