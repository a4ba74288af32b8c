// Command concbench-peer-go runs concbench's workloads the way Go's own guidance
// says to: goroutines, net/http, context and a buffered channel as a semaphore.
// concbench starts it with a sub-command and flags (see ../README.md) and reads
// one line per request from stdout; any error is one line on stderr and exit 1.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: concbench-peer-go fan_out|blocking_stall|sha256|version --flag value ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "fan_out":
		fanOut(args)
	case "blocking_stall":
		blockingStall(args)
	case "sha256":
		sha256Command(args)
	case "version":
		// concbench asks this to find the peer: one line, the toolchain.
		out := newOutput()
		fmt.Fprintf(out, "concbench-peer-go %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		out.finish()
	default:
		fail("unknown sub-command %q (want fan_out, blocking_stall, sha256 or version)", os.Args[1])
	}
}

// fail reports an error the way concbench expects: one line on stderr, exit 1.
func fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "concbench-peer-go: "+strings.ReplaceAll(msg, "\n", " "))
	os.Exit(1)
}

// newFlags returns a flag set that reports errors through fail rather than
// printing the usage text, which would break the one-line error contract.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		fail("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		fail("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
}

// requireFlags fails unless every named flag was given: the flag package has
// no required flags, and a silent default would run the wrong cell.
func requireFlags(fs *flag.FlagSet, names ...string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range names {
		if !set[name] {
			fail("%s: missing --%s", fs.Name(), name)
		}
	}
}

func loadCorpus(path string) []byte {
	corpus, err := os.ReadFile(path)
	if err != nil {
		fail("corpus: %v", err)
	}
	if len(corpus) == 0 {
		fail("corpus %s is empty", path)
	}
	return corpus
}

// block is the protocol's block(size, i): a window of the corpus that moves
// with i, so that every request hashes different bytes.
func block(corpus []byte, size, i uint64) []byte {
	start := i * 4099 % (uint64(len(corpus)) - size + 1)
	return corpus[start : start+size]
}

// le64 is the first 8 bytes of SHA-256(b), little-endian.
func le64(b []byte) uint64 {
	sum := sha256.Sum256(b)
	return binary.LittleEndian.Uint64(sum[:8])
}

// checkBlockSize fails for a size that block cannot take from the corpus.
func checkBlockSize(corpus []byte, name string, size uint64) {
	if size == 0 || size > uint64(len(corpus)) {
		fail("--%s %d: must be 1 to %d (the corpus size)", name, size, len(corpus))
	}
}

// sha256Command measures the language's SHA-256 alone, as a baseline for the
// cpu kind of blocking_stall: only the hashing loop is timed.
func sha256Command(args []string) {
	fs := newFlags("sha256")
	corpusPath := fs.String("corpus", "", "the cpu_hash corpus")
	chunk := fs.Uint64("chunk-bytes", 0, "bytes per hash")
	total := fs.Uint64("total-bytes", 0, "bytes to hash in all")
	parseFlags(fs, args)
	requireFlags(fs, "corpus", "chunk-bytes", "total-bytes")
	corpus := loadCorpus(*corpusPath)
	checkBlockSize(corpus, "chunk-bytes", *chunk)

	n := *total / *chunk
	var sum uint64
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		sum += le64(block(corpus, *chunk, i))
	}
	elapsed := time.Since(start)

	out := newOutput()
	fmt.Fprintf(out, "sha256 %d %.9f %d\n", n**chunk, elapsed.Seconds(), sum)
	out.finish()
}

// output buffers the reply, which is written after the run so that writing
// it is not timed.
type output struct{ *bufio.Writer }

func newOutput() output { return output{bufio.NewWriter(os.Stdout)} }

// finish ends the reply with the line that says it is complete.
func (o output) finish() {
	fmt.Fprintln(o, "end")
	if err := o.Flush(); err != nil {
		fail("stdout: %v", err)
	}
}
