package jobview

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// stdJSON is encoding/json's string encoding without HTML escaping.
func stdJSON(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(s))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func checkText(t testing.TB, b []byte, piece int) {
	want := stdJSON(t, string(b))
	require.Equal(t, string(want[1:len(want)-1]), string(AppendText(nil, b)))
	n, valid := textLen(b)
	require.Equal(t, len(want)-2, n)
	require.Equal(t, utf8.Valid(b), valid)
	var buf bytes.Buffer
	require.NoError(t, WriteString(&buf, bytes.NewReader(b), make([]byte, piece)))
	require.Equal(t, string(want), buf.String())
	isText, err := outputIsText(bytes.NewReader(b), make([]byte, max(piece, utf8.UTFMax)))
	require.NoError(t, err)
	require.Equal(t, IsText(b), isText)
}

// FuzzText checks the output encoding against encoding/json, including
// outputs long enough to be written in several pieces (the input is
// repeated) so that pieces are cut inside UTF-8 sequences.
func FuzzText(f *testing.F) {
	for _, s := range []string{"", "hello\n", "<>&", "\x00\x01\x1f\x7f", "\"\\", "é€😀", "\xff\xfe", "\xe2\x82", "\u2028\u2029", "a\xe2\x82\xacb"} {
		f.Add([]byte(s), uint16(1))
		f.Add([]byte(s), uint16(40000))
	}
	f.Fuzz(func(t *testing.T, b []byte, reps uint16) {
		if len(b)*int(reps) > 1<<17 {
			reps = uint16((1 << 17) / max(len(b), 1))
		}
		// Pieces of every small size cut inside UTF-8 sequences.
		checkText(t, b, 4+int(reps)%13)
		checkText(t, bytes.Repeat(b, int(reps)), 4+int(reps)%13)
		checkText(t, bytes.Repeat(b, int(reps)), 0)
	})
}

func TestPiecesCutInsideRunes(t *testing.T) {
	t.Parallel()
	for _, r := range []string{"é", "€", "😀", "\xe2\x82", "\xff"} {
		for pad := range 4 {
			checkText(t, []byte(strings.Repeat("a", pad)+strings.Repeat(r, escapePiece)), 0)
			checkText(t, []byte(strings.Repeat("a", pad)+strings.Repeat(r, 100)), 5+pad)
		}
	}
}

func TestIsText(t *testing.T) {
	t.Parallel()
	require.True(t, IsText([]byte(strings.Repeat("<", 1000))), "HTML characters are one byte each")
	require.True(t, IsText([]byte(strings.Repeat("line\n", 1000))))
	require.True(t, IsText([]byte(strings.Repeat("\n", 1000))), "twice the size is text")
	require.True(t, IsText([]byte("\nGREETING=\n\x00\x01\x02")), "a few control characters in a short output")
	require.False(t, IsText([]byte(strings.Repeat("\x01", 1000))), "six times the size is base64")
	require.False(t, IsText([]byte{0xff, 'a'}))
	require.True(t, IsText(nil))
}

func finished(stdout, stderr []byte) store.Job {
	now := time.Now().UTC()
	code := "trap"
	msg := "<b>"
	return store.Job{ID: uuid.New(), ModuleID: uuid.New(), Function: "_start", Status: jobstate.Failed,
		Stdout: stdout, Stderr: stderr, ErrorCode: &code, ErrorMessage: &msg,
		Metadata:  store.JSON[map[string]string]{V: map[string]string{"k": "<&>"}},
		CreatedAt: now, StartedAt: &now, FinishedAt: &now}
}

// Encode writes what From renders (outputs spliced in) without HTML
// escaping, and at most about twice the outputs' size.
func TestEncode(t *testing.T) {
	t.Parallel()
	for _, out := range [][]byte{nil, []byte("hi <there>\n"), {0xff, 0xfe, 0}, bytes.Repeat([]byte("\x01"), 100000),
		bytes.Repeat([]byte("<"), 100000), []byte(strings.Repeat("€", 50000))} {
		j := finished(out, []byte("err"))
		var buf, small bytes.Buffer
		require.NoError(t, Encode(&buf, j))
		require.NoError(t, EncodeOutputs(&small, j, bytes.NewReader(j.Stdout), bytes.NewReader(j.Stderr), 7))
		require.Equal(t, buf.String(), small.String(), "pieces of 7 bytes")
		require.True(t, bytes.HasSuffix(buf.Bytes(), []byte("}\n")))
		require.NotContains(t, buf.String(), `\u003c`)
		require.LessOrEqual(t, buf.Len(), 2*len(out)+2000)
		var got, want map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got), "%.200s", buf.String())
		b, err := json.Marshal(From(j))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &want))
		require.Equal(t, want, got)
	}
}

func TestSummaryAndUnloadedOutputs(t *testing.T) {
	t.Parallel()
	j := finished([]byte("out"), nil)
	s := Summary(j)
	require.Nil(t, s.Stdout)
	require.True(t, s.OutputOmitted)
	require.False(t, From(j).OutputOmitted)
	j.Stdout, j.StdoutBytes = nil, 1<<20 // read without its outputs
	require.True(t, From(j).OutputOmitted)
	var buf bytes.Buffer
	require.NoError(t, Encode(&buf, j))
	require.Contains(t, buf.String(), `"output_omitted":true`)
	queued := store.Job{Status: jobstate.Queued}
	require.False(t, Summary(queued).OutputOmitted)
}

// shortOutput claims more bytes than it has, like an output whose job was
// deleted while it was being written.
type shortOutput struct{ *bytes.Reader }

func (s shortOutput) Size() int64 { return s.Reader.Size() + 100 }

func TestEncodeOutputsReportsAShortOutput(t *testing.T) {
	t.Parallel()
	j := finished(nil, nil)
	for _, out := range [][]byte{[]byte("text"), {0xff}} {
		var buf bytes.Buffer
		err := EncodeOutputs(&buf, j, shortOutput{bytes.NewReader(out)}, bytes.NewReader(nil), 2)
		require.Error(t, err)
	}
}
