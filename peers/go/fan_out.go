// fan_out: N GET requests with at most K in flight, the way Go code usually
// writes a concurrent fetcher. An errgroup-style group (a buffered channel as a
// semaphore, a WaitGroup and a context cancelled on the first error; errgroup
// itself is not in the standard library) bounds the goroutines in flight, a
// Transport bounds the keep-alive connections to the same K, and every request
// carries a context.WithTimeout. With --group all the first request that fails
// or times out cancels the group's context, which net/http turns into closing
// the connections of the requests in flight; --group settled lets each one end.

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

type ending string

const (
	endOK        ending = "ok"
	endFailed    ending = "failed"
	endTimedOut  ending = "timed_out"
	endCancelled ending = "cancelled"
)

type fetchResult struct {
	ending     ending
	status     int
	launched   bool // took a slot; a request cancelled before that has no latency
	start, end time.Time
	digest     string
}

// fetchGroup is the errgroup pattern with SetLimit, written out.
type fetchGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu           sync.Mutex
	firstFailure time.Time // zero until a failure stops group all
	fatal        error     // the run is wrong (refused, bad status): exit 1
}

// stop cancels every request in the group; the first caller's reason wins.
func (g *fetchGroup) stop(fatal error) {
	g.mu.Lock()
	if fatal != nil && g.fatal == nil {
		g.fatal = fatal
	}
	if fatal == nil && g.firstFailure.IsZero() && g.ctx.Err() == nil {
		g.firstFailure = time.Now()
	}
	g.mu.Unlock()
	g.cancel()
}

func fanOut(args []string) {
	fs := newFlags("fan_out")
	host := fs.String("host", "127.0.0.1", "server address")
	port := fs.Int("port", 0, "server port")
	target := fs.String("target", "", "request target; the id is appended")
	n := fs.Int("n", 0, "requests")
	k := fs.Int("k", 0, "at most this many in flight")
	group := fs.String("group", "", "all (fail fast) or settled")
	timeoutMs := fs.Int("timeout-ms", 0, "timeout per request")
	parseFlags(fs, args)
	requireFlags(fs, "port", "target", "n", "k", "group", "timeout-ms")
	switch {
	case *port <= 0 || *port > 65535:
		fail("fan_out: --port %d out of range", *port)
	case *n < 0:
		fail("fan_out: --n %d is negative", *n)
	case *k <= 0:
		fail("fan_out: --k must be at least 1")
	case *group != "all" && *group != "settled":
		fail("fan_out: --group %q (want all or settled)", *group)
	case *timeoutMs <= 0:
		fail("fan_out: --timeout-ms must be at least 1")
	}
	failFast := *group == "all"
	timeout := time.Duration(*timeoutMs) * time.Millisecond
	base := "http://" + net.JoinHostPort(*host, strconv.Itoa(*port)) + *target

	client := &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     *k,
		MaxIdleConnsPerHost: *k,
		MaxIdleConns:        *k,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // the digest is of the bytes the server sent
	}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &fetchGroup{ctx: ctx, cancel: cancel, sem: make(chan struct{}, *k)}
	results := make([]fetchResult, *n)

	for id := range results {
		select {
		case g.sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// Never launched: every id from here on ends cancelled.
			for rest := id; rest < len(results); rest++ {
				results[rest] = fetchResult{ending: endCancelled}
			}
			break
		}
		g.wg.Add(1)
		go func(id int) {
			defer g.wg.Done()
			defer func() { <-g.sem }()
			r := &results[id]
			r.launched, r.start = true, time.Now()
			err := fetch(ctx, client, base+strconv.Itoa(id), timeout, r)
			r.end = time.Now()
			switch {
			case err != nil:
				g.stop(fmt.Errorf("request %d: %w", id, err))
			case failFast && (r.ending == endFailed || r.ending == endTimedOut):
				g.stop(nil)
			}
		}(id)
	}
	g.wg.Wait()
	if g.fatal != nil {
		fail("fan_out: %v", g.fatal)
	}

	var first, last time.Time
	for _, r := range results {
		if !r.launched {
			continue
		}
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
		if r.end.After(last) {
			last = r.end
		}
	}

	out := newOutput()
	for id, r := range results {
		latency, digest := "-", "-"
		if r.launched {
			latency = strconv.FormatInt(r.end.Sub(r.start).Nanoseconds(), 10)
		}
		if r.ending == endOK {
			digest = r.digest
		}
		fmt.Fprintf(out, "request %d %s %d %s %s\n", id, r.ending, r.status, latency, digest)
	}
	fmt.Fprintf(out, "wall_ns %d\n", last.Sub(first).Nanoseconds())
	if !g.firstFailure.IsZero() {
		fmt.Fprintf(out, "cancel_ns %d\n", last.Sub(g.firstFailure).Nanoseconds())
	}
	out.finish()
}

// fetch runs one request to its end and fills r. An error means the run is
// wrong (the server unreachable, a status other than 200 or 500), not that the
// request failed, timed out or was cancelled: those are endings.
func fetch(group context.Context, client *http.Client, url string, timeout time.Duration, r *fetchResult) error {
	ctx, cancel := context.WithTimeout(group, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}

	// ctx.Err() says which came first, the deadline or the group's cancel;
	// any other error is the server's or the network's.
	interrupted := func(err error) error {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			r.ending = endTimedOut
		case ctx.Err() != nil:
			r.ending = endCancelled
		default:
			return err
		}
		return nil
	}

	resp, err := client.Do(req)
	if err != nil {
		return interrupted(err)
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	// The whole body is read even for a 500, so that the connection goes back
	// to the pool instead of being closed.
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return interrupted(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		sum := sha256.Sum256(body)
		r.ending, r.digest = endOK, hex.EncodeToString(sum[:8])
	case http.StatusInternalServerError:
		r.ending = endFailed
	default:
		return fmt.Errorf("unexpected HTTP status %d", resp.StatusCode)
	}
	return nil
}
