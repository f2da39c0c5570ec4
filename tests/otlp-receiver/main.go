// Command otlp-receiver is a small OTLP sink for Strait's end-to-end tests.
//
// It runs the OpenTelemetry Collector's own OTLP receiver
// (go.opentelemetry.io/collector/receiver/otlpreceiver), so exporters are
// tested against the real server-side implementation of OTLP/HTTP (and
// optionally OTLP/gRPC), and appends every batch it receives to a file as one
// JSON line:
//
//	{"signal":"traces","data":<OTLP JSON>}
//	{"signal":"metrics","data":<OTLP JSON>}
//	{"signal":"logs","data":<OTLP JSON>}
//
// where <OTLP JSON> is pdata's standard OTLP/JSON encoding of the batch.
//
// Usage:
//
//	otlp-receiver -http 127.0.0.1:0 -out FILE [-grpc ADDR]
//
// Once the HTTP server is listening it prints exactly one line to stderr,
//
//	otlp-receiver: http on 127.0.0.1:PORT
//
// and then serves until SIGINT or SIGTERM, when it shuts the receiver down
// and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
)

// startAttempts bounds how often a start is retried when a port that was
// picked for ":0" is taken by someone else before the receiver binds it.
const startAttempts = 5

func main() {
	httpAddr := flag.String("http", "127.0.0.1:0", "OTLP/HTTP listen address (port 0 picks a free port)")
	grpcAddr := flag.String("grpc", "", "OTLP/gRPC listen address (port 0 picks a free port); disabled when empty")
	outPath := flag.String("out", "", "file to append received batches to, one JSON line each (required)")
	flag.Parse()

	if *outPath == "" || *httpAddr == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: otlp-receiver -http ADDR -out FILE [-grpc ADDR]")
		os.Exit(2)
	}
	if err := run(*httpAddr, *grpcAddr, *outPath); err != nil {
		fmt.Fprintf(os.Stderr, "otlp-receiver: %v\n", err)
		os.Exit(1)
	}
}

// run starts the receiver, serves until a signal or a fatal server error,
// then shuts the receiver down.
func run(httpAddr, grpcAddr, outPath string) error {
	out, err := newSink(outPath)
	if err != nil {
		return err
	}
	defer out.Close()

	logger, err := newLogger()
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	host := &host{fatal: make(chan error, 1)}
	var rcv *otlp
	for attempt := 1; ; attempt++ {
		rcv, err = startReceiver(ctx, host, logger, out, httpAddr, grpcAddr)
		if err == nil {
			break
		}
		// Only a port we picked ourselves can have been stolen in between;
		// an explicit address that is in use is the caller's problem.
		if !errors.Is(err, syscall.EADDRINUSE) || !(isAnyPort(httpAddr) || isAnyPort(grpcAddr)) || attempt == startAttempts {
			return err
		}
	}

	if rcv.grpcAddr != "" {
		fmt.Fprintf(os.Stderr, "otlp-receiver: grpc on %s\n", rcv.grpcAddr)
	}
	// The readiness line the tests wait for: the HTTP listener is bound by now.
	fmt.Fprintf(os.Stderr, "otlp-receiver: http on %s\n", rcv.httpAddr)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-host.fatal:
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(serveErr, rcv.shutdown(shutdownCtx))
}

// otlp is one started OTLP receiver serving all signals, and the addresses it
// listens on.
type otlp struct {
	receivers []component.Component
	httpAddr  string
	grpcAddr  string
}

// startReceiver creates the collector's OTLP receiver for traces, metrics and
// logs, all feeding out, and starts it. Ports 0 are replaced by free ports
// first, because the receiver does not report the address it bound.
func startReceiver(ctx context.Context, host component.Host, logger *zap.Logger, out *sink, httpAddr, grpcAddr string) (*otlp, error) {
	o := &otlp{}
	var err error
	if o.httpAddr, err = resolvePort(httpAddr); err != nil {
		return nil, fmt.Errorf("http address: %w", err)
	}
	if grpcAddr != "" {
		if o.grpcAddr, err = resolvePort(grpcAddr); err != nil {
			return nil, fmt.Errorf("grpc address: %w", err)
		}
	}

	factory := otlpreceiver.NewFactory()
	// The default config has both protocols present but disabled;
	// GetOrInsertDefault enables one with its defaults.
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = o.httpAddr
	if o.grpcAddr != "" {
		cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = o.grpcAddr
	}

	set := receiver.Settings{
		ID: component.NewID(factory.Type()),
		TelemetrySettings: component.TelemetrySettings{
			Logger:         logger,
			TracerProvider: tracenoop.NewTracerProvider(),
			MeterProvider:  metricnoop.NewMeterProvider(),
			Resource:       pcommon.NewResource(),
		},
		BuildInfo: component.BuildInfo{Command: "otlp-receiver", Description: "Strait e2e OTLP receiver", Version: "dev"},
	}

	traces, err := consumer.NewTraces(func(_ context.Context, td ptrace.Traces) error {
		return out.write("traces", func() ([]byte, error) { return (&ptrace.JSONMarshaler{}).MarshalTraces(td) })
	})
	if err != nil {
		return nil, err
	}
	metrics, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		return out.write("metrics", func() ([]byte, error) { return (&pmetric.JSONMarshaler{}).MarshalMetrics(md) })
	})
	if err != nil {
		return nil, err
	}
	logs, err := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		return out.write("logs", func() ([]byte, error) { return (&plog.JSONMarshaler{}).MarshalLogs(ld) })
	})
	if err != nil {
		return nil, err
	}

	// The factory keeps one receiver per config object, so creating every
	// signal from the same cfg yields one server with all handlers registered.
	tr, err := factory.CreateTraces(ctx, set, cfg, traces)
	if err != nil {
		return nil, err
	}
	o.receivers = append(o.receivers, tr)
	mr, err := factory.CreateMetrics(ctx, set, cfg, metrics)
	if err != nil {
		return nil, errors.Join(err, o.shutdown(ctx))
	}
	o.receivers = append(o.receivers, mr)
	lr, err := factory.CreateLogs(ctx, set, cfg, logs)
	if err != nil {
		return nil, errors.Join(err, o.shutdown(ctx))
	}
	o.receivers = append(o.receivers, lr)

	// Starting the shared receiver once starts it for all signals; Start
	// returns only after the listeners are bound.
	if err := tr.Start(ctx, host); err != nil {
		return nil, errors.Join(err, o.shutdown(ctx))
	}
	return o, nil
}

// shutdown stops the receiver. The signals share one underlying receiver,
// which shuts down once however many of them are shut down.
func (o *otlp) shutdown(ctx context.Context) error {
	var errs []error
	for _, r := range o.receivers {
		errs = append(errs, r.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// resolvePort returns addr, with port 0 replaced by a port that was free a
// moment ago (found by listening on it and closing the listener).
func resolvePort(addr string) (string, error) {
	if !isAnyPort(addr) {
		return addr, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// isAnyPort reports whether addr asks for any free port.
func isAnyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// sink appends JSON lines to a file, one complete line per batch.
type sink struct {
	mu sync.Mutex
	f  *os.File
}

func newSink(path string) (*sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &sink{f: f}, nil
}

// line is the shape of one output line.
type line struct {
	Signal string          `json:"signal"`
	Data   json.RawMessage `json:"data"`
}

// write encodes one batch with marshal and appends it as a line. The line is
// written with a single write call and synced, so a reader of the file never
// sees a partial line.
func (s *sink) write(signal string, marshal func() ([]byte, error)) error {
	data, err := marshal()
	if err != nil {
		return err
	}
	b, err := json.Marshal(line{Signal: signal, Data: data})
	if err != nil {
		return err
	}
	b = append(b, '\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(b); err != nil {
		return err
	}
	return s.f.Sync()
}

func (s *sink) Close() error {
	return s.f.Close()
}

// newLogger returns the receiver's logger: warnings and errors only, on
// stderr, so that normal operation prints nothing but the readiness line.
func newLogger() (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	cfg.Encoding = "console"
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	return cfg.Build()
}

// host is the minimal component.Host the receiver runs in: no extensions,
// and a status reporter that passes fatal server errors on to run.
type host struct {
	fatal chan error
}

var (
	_ component.Host           = (*host)(nil)
	_ componentstatus.Reporter = (*host)(nil)
)

func (*host) GetExtensions() map[component.ID]component.Component { return nil }

func (h *host) Report(ev *componentstatus.Event) {
	if ev.Status() != componentstatus.StatusFatalError {
		return
	}
	select {
	case h.fatal <- ev.Err():
	default: // one fatal error is enough to stop
	}
}
