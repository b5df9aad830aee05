// Command ferretdb-harness runs FerretDB 1.24 (embedded, SQLite backend) for the test suite.
//
// FerretDB's own cmd/ferretdb built with `go install` panics at start because its version
// file is missing from the module (FerretDB issue 2982); the embeddable package works, so the
// tests run it through this program.
//
// Usage: ferretdb-harness -listen 127.0.0.1:0 -dir /tmp/state
//
//	or: ferretdb-harness -listen 127.0.0.1:0 -postgresql-url postgres://127.0.0.1:5432/db
//
// (the PostgreSQL backend answers _id lookups from an index; the benchmarks use it).
// It prints one line "mongodb://HOST:PORT/" once it accepts connections and stops on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP listen address (loopback)")
	dir := flag.String("dir", "", "directory for the SQLite databases")
	postgresqlURL := flag.String("postgresql-url", "", "use the PostgreSQL backend with this database instead of SQLite")
	logLevel := flag.String("log-level", "error", "debug, info, warn or error")
	flag.Parse()

	if *dir == "" && *postgresqlURL == "" {
		fmt.Fprintln(os.Stderr, "ferretdb-harness: -dir or -postgresql-url is required")
		os.Exit(2)
	}
	// FerretDB needs a concrete port to build its URI: pick a free one when asked for port 0.
	address := *listen
	if host, port, err := net.SplitHostPort(address); err == nil && port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb-harness:", err)
			os.Exit(1)
		}
		address = l.Addr().String()
		l.Close()
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		level = slog.LevelError
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	config := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: address},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	}
	if *postgresqlURL != "" {
		config.Handler = "postgresql"
		config.PostgreSQLURL = *postgresqlURL
		config.SQLiteURL = ""
	}
	f, err := ferretdb.New(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-harness:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()

	// Announce the URI only once the listener accepts connections.
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "ferretdb-harness: listener did not come up:", err)
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println(f.MongoDBURI())
	<-done
}
