// blocking_stall: an open-loop stream of light requests with heavy ones mixed
// in. Go has no event loop to stall: every request is a goroutine and runs its
// work, light or heavy, where it is, which is what Go code does. The question is
// what the scheduler makes of it with GOMAXPROCS = --workers: heavy CPU work
// holds a P until the runtime preempts it (about every 10 ms), while a blocking
// system call (kind sleep: syscall.Nanosleep) holds only an OS thread, and the
// runtime hands its P to another thread so that the light requests go on.
// `--offload inline` is therefore the only offload there is.

package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type arrival struct {
	at    time.Duration // from the start of the run
	heavy bool
}

type stallResult struct {
	latency time.Duration // from the scheduled arrival to the end
	value   uint64
	stall   time.Duration // heavy only: how long the heavy call held its thread
}

func blockingStall(args []string) {
	fs := newFlags("blocking_stall")
	schedulePath := fs.String("schedule", "", "ARRIVAL_NS HEAVY per line")
	corpusPath := fs.String("corpus", "", "the cpu_hash corpus")
	kind := fs.String("kind", "", "cpu or sleep")
	offload := fs.String("offload", "inline", "inline (the only one Go has)")
	workUs := fs.Int64("work-us", 0, "kind sleep: how long a heavy request blocks")
	cpuBytes := fs.Uint64("cpu-bytes", 0, "kind cpu: bytes a heavy request hashes")
	workers := fs.Int("workers", 0, "GOMAXPROCS")
	parseFlags(fs, args)
	requireFlags(fs, "schedule", "corpus", "kind", "workers")
	switch {
	case *kind != "cpu" && *kind != "sleep":
		fail("blocking_stall: --kind %q (want cpu or sleep)", *kind)
	case *offload != "inline":
		fail("blocking_stall: --offload %s is not a Go model: every request is a goroutine (inline only)", *offload)
	case *workers < 1:
		fail("blocking_stall: --workers must be at least 1")
	case *workUs < 0:
		fail("blocking_stall: --work-us is negative")
	}
	corpus := loadCorpus(*corpusPath)
	checkBlockSize(corpus, "corpus", 64)
	if *kind == "cpu" {
		requireFlags(fs, "cpu-bytes")
		checkBlockSize(corpus, "cpu-bytes", min64(*cpuBytes, 65536))
	} else {
		requireFlags(fs, "work-us")
	}
	schedule := readSchedule(*schedulePath)
	runtime.GOMAXPROCS(*workers)

	heavy := func(id uint64) uint64 { return sleepHeavy(id, time.Duration(*workUs)*time.Microsecond) }
	if *kind == "cpu" {
		heavy = func(id uint64) uint64 { return cpuHeavy(corpus, id, *cpuBytes) }
	}

	results := make([]stallResult, len(schedule))
	var wg sync.WaitGroup
	wg.Add(len(schedule))
	serve := func(start time.Time, id int) {
		defer wg.Done()
		r := &results[id]
		if schedule[id].heavy {
			t := time.Now()
			r.value = heavy(uint64(id))
			r.stall = time.Since(t)
		} else {
			r.value = le64(block(corpus, 64, uint64(id)))
		}
		r.latency = time.Since(start) - schedule[id].at
	}
	feed(schedule, serve)
	wg.Wait()

	out := newOutput()
	for id, r := range results {
		fmt.Fprintf(out, "request %d %d %d\n", id, r.latency.Nanoseconds(), r.value)
	}
	for id, r := range results {
		if schedule[id].heavy {
			fmt.Fprintf(out, "stall %d\n", r.stall.Nanoseconds())
		}
	}
	out.finish()
}

// feed starts each request's goroutine at its arrival, as a listener would on
// accepting it, from an OS thread of its own that sleeps in syscall.Nanosleep.
// A time.Sleep feeder was measured too and lost: when the process is idle the
// runtime waits for its next timer in epoll_wait, whose timeout is whole
// milliseconds, so every sub-millisecond gap came out about 1 ms long (light
// p50 0.55 ms at --work-us 0 against 0.04 to 0.1 ms here). Nanosleep with a
// 1 ns timer slack wakes on time; the new goroutine then runs on an idle P. With
// one P the feeder yields it first: asleep in its system call it would hold the
// P until sysmon takes it back, up to 10 ms later, a delay of the feeder's own
// and not of the requests.
func feed(schedule []arrival, serve func(start time.Time, id int)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		start := time.Now()
		for id, a := range schedule {
			if wait := a.at - time.Since(start); wait > 0 {
				nanosleep(wait)
			}
			go serve(start, id)
			runtime.Gosched()
		}
	}()
	<-done
}

// nanosleep blocks the calling OS thread for d, a blocking system call as
// far as the runtime is concerned.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for {
		var left syscall.Timespec
		err := syscall.Nanosleep(&ts, &left)
		if err != syscall.EINTR {
			return
		}
		ts = left // a signal cut the sleep short
	}
}

// cpuHeavy hashes cpuBytes of the corpus in chunks of at most 64 KiB.
func cpuHeavy(corpus []byte, id, cpuBytes uint64) uint64 {
	chunk := min64(cpuBytes, 65536)
	var sum uint64
	for i := id; i < id+(cpuBytes+chunk-1)/chunk; i++ {
		sum += le64(block(corpus, chunk, i))
	}
	return sum
}

// sleepHeavy blocks its thread in a system call, as a blocking driver would.
func sleepHeavy(id uint64, d time.Duration) uint64 {
	nanosleep(d)
	return (id + 1) * 0x9e3779b97f4a7c15
}

func readSchedule(path string) []arrival {
	f, err := os.Open(path)
	if err != nil {
		fail("schedule: %v", err)
	}
	defer f.Close()
	var schedule []arrival
	lines := bufio.NewScanner(f)
	for line := 1; lines.Scan(); line++ {
		text := strings.TrimSpace(lines.Text())
		if text == "" {
			continue
		}
		fields := strings.Fields(text)
		var at int64
		if len(fields) == 2 {
			at, err = strconv.ParseInt(fields[0], 10, 64)
		}
		if len(fields) != 2 || err != nil || at < 0 || (fields[1] != "0" && fields[1] != "1") {
			fail("schedule %s:%d: want ARRIVAL_NS HEAVY, got %q", path, line, text)
		}
		if n := len(schedule); n > 0 && time.Duration(at) < schedule[n-1].at {
			fail("schedule %s:%d: arrivals out of order", path, line)
		}
		schedule = append(schedule, arrival{time.Duration(at), fields[1] == "1"})
	}
	if err := lines.Err(); err != nil {
		fail("schedule: %v", err)
	}
	return schedule
}

func min64(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}
