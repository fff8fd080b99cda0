package serve

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"

	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// OTelParents returns a WithTraceParent function that makes each request's
// root spans in exp children of the caller's span, as W3C trace context
// says (an invalid header is ignored).
func OTelParents(exp *otelsink.Exporter) func(requestID, traceparent string) {
	prop := propagation.TraceContext{}
	return func(requestID, traceparent string) {
		h := http.Header{}
		h.Set("Traceparent", traceparent)
		ctx := prop.Extract(context.Background(), propagation.HeaderCarrier(h))
		if sc := oteltrace.SpanContextFromContext(ctx); sc.IsValid() {
			exp.SetRequestParent(requestID, sc)
		}
	}
}
