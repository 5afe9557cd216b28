package wire

import (
	"fmt"
)

// The input arena. Input files of at least a threshold size do not travel
// in Input frames: the worker copies them, one after the other, into a
// memfd it shares with the child (the arena, one per child, made when the
// child starts and handed to it read-only), and the request says where each
// one is (InputHeader.Shared, Offset) and how far they extend
// (Files.SharedBytes). The child maps the arena read-only and shared, and
// the job's filesystem serves those inputs from the mapping without copying
// them; SharedSlices checks every offset and size against the arena's real
// size first. The arena is reused from job to job, so a job's inputs land
// in memory that is already allocated: allocating fresh pages for every job
// (a new memfd per job) cost more than the copies it saved
// (docs/BENCHMARKS.md). The worker writes the arena only between the
// child's jobs.

// MaxSharedBytes bounds the shared inputs of one job: the largest
// max_input_bytes a tier may have.
const MaxSharedBytes = 4 << 30

// validShared checks a shared input's place in sharedBytes bytes, without
// overflow.
func validShared(in InputHeader, sharedBytes int64) bool {
	size := int64(in.Size)
	return in.Offset >= 0 && size >= 0 && size <= MaxSharedBytes && in.Offset <= sharedBytes-size
}

// SharedSlices returns, for each input of f in order, its bytes within
// arena (the child's mapping of the input arena, as long as the arena's
// real size) for a shared input, nil for one sent in a frame. Every offset
// and size is checked against f.SharedBytes and len(arena) before it is
// used; each slice is capped at its own end.
func SharedSlices(f *Files, arena []byte) ([][]byte, error) {
	if f.SharedBytes < 0 || f.SharedBytes > int64(len(arena)) {
		return nil, fmt.Errorf("wire: shared inputs extend to %d bytes, the input arena has %d", f.SharedBytes, len(arena))
	}
	out := make([][]byte, len(f.Inputs))
	for i, in := range f.Inputs {
		if !in.Shared {
			continue
		}
		if !validShared(in, f.SharedBytes) {
			return nil, fmt.Errorf("wire: shared input %q at %d, %d bytes, outside %d bytes", in.Path, in.Offset, in.Size, f.SharedBytes)
		}
		end := in.Offset + int64(in.Size)
		out[i] = arena[in.Offset:end:end]
	}
	return out, nil
}
