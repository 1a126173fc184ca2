package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The conformance vectors in testdata/vectors are produced by this file
// (vectorFiles in vectors_gen_test.go says what they hold) and checked
// by TestVectors against the code. To regenerate them after a deliberate
// change of the encoding:
//
//	go test ./wire -run TestVectors -vectors
var writeVectors = flag.Bool("vectors", false, "rewrite testdata/vectors/*.json")

const vectorDir = "testdata/vectors"

// vector is one entry of a vector file; testdata/vectors/README.md is its
// description for other languages.
type vector struct {
	Name        string          `json:"name"`
	Hex         string          `json:"hex"`
	Header      *vectorHeader   `json:"header,omitempty"`
	PayloadType string          `json:"payload_type"`
	Fields      json.RawMessage `json:"fields,omitempty"`
	Valid       bool            `json:"valid"`
	Error       string          `json:"error,omitempty"`
}

type vectorHeader struct {
	Op      uint8  `json:"op"`
	Flags   uint8  `json:"flags"`
	Status  uint16 `json:"status"`
	Request uint64 `json:"request"`
}

func (v *vector) frame() []byte {
	b, err := hex.DecodeString(v.Hex)
	if err != nil {
		panic(fmt.Sprintf("vector %s: %v", v.Name, err))
	}
	return b
}

// payload returns the frame's payload (nil if the frame is shorter than a
// header).
func (v *vector) payload() []byte {
	if b := v.frame(); len(b) >= HeaderSize {
		return b[HeaderSize:]
	}
	return nil
}

// errorClass names the class of a decode error as the vectors do.
func errorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBadFrame):
		return "bad_frame"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrUnknownCritical):
		return "critical"
	case errors.Is(err, ErrInvalidHeaders), errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "unexpected: " + err.Error()
}

// decodeFrame reads one whole frame as payload type typ.
func decodeFrame(frame []byte, typ string) (Header, payload, error) {
	r := NewReader(bytes.NewReader(frame), 0, 0)
	h, p, err := r.Next()
	if err != nil {
		return h, nil, err
	}
	if r.Buffered() != 0 {
		return h, nil, fmt.Errorf("%d bytes after the frame", r.Buffered())
	}
	k, ok := decoderKind(typ)
	if !ok {
		return h, nil, fmt.Errorf("unknown payload type %q", typ)
	}
	m := decoders[k].new()
	return h, m, m.Decode(p)
}

func loadVectors(tb testing.TB) []vector {
	files, _ := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	var all []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var vs []vector
		if err := json.Unmarshal(data, &vs); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		all = append(all, vs...)
	}
	return all
}

func TestVectors(t *testing.T) {
	gen := generateVectors(t)
	if *writeVectors {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range gen {
			if err := os.WriteFile(filepath.Join(vectorDir, f.name), f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range gen {
		got, err := os.ReadFile(filepath.Join(vectorDir, f.name))
		if err != nil {
			t.Fatalf("%v (run go test ./wire -run TestVectors -vectors)", err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s is not what the code generates: run go test ./wire -run TestVectors -vectors and review the diff", f.name)
		}
	}
	vs := loadVectors(t)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, &v) })
	}
}

// checkVector is what a client in another language does with a vector.
func checkVector(t *testing.T, v *vector) {
	frame := v.frame()
	h, m, err := decodeFrame(frame, v.PayloadType)
	if !v.Valid {
		if got := errorClass(err); got != v.Error {
			t.Fatalf("error %q (%v), want %q", got, err, v.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("valid vector does not decode: %v", err)
	}
	if v.Header != nil {
		want := Header{Op: Op(v.Header.Op), Flags: v.Header.Flags, Status: Code(v.Header.Status), Request: v.Header.Request}
		if h != want {
			t.Fatalf("header %+v, want %+v", h, want)
		}
	}
	got, _ := json.Marshal(fieldsOf(m))
	if !jsonEqual(t, got, v.Fields) {
		t.Fatalf("fields\n%s\nwant\n%s", got, v.Fields)
	}
	b, off := StartFrame(nil, h)
	if re := FinishFrame(m.Append(b), off); !bytes.Equal(re, frame) {
		t.Fatalf("re-encodes to\n%x\nwant\n%x", re, frame)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	for _, p := range []struct {
		data []byte
		v    *any
	}{{a, &x}, {b, &y}} {
		d := json.NewDecoder(bytes.NewReader(p.data))
		d.UseNumber()
		if err := d.Decode(p.v); err != nil {
			t.Fatal(err)
		}
	}
	return reflect.DeepEqual(x, y)
}

// fieldsOf renders a decoded payload as the vectors' "fields": exported
// struct fields by snake_case name, byte fields as {"utf8"} when they are
// printable ASCII and {"hex"} otherwise.
func fieldsOf(m any) any { return fieldValue(reflect.ValueOf(m)) }

var byteSliceType = reflect.TypeOf([]byte(nil))

func fieldValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer:
		return fieldValue(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous {
				for k, x := range fieldValue(v.Field(i)).(map[string]any) {
					out[k] = x
				}
				continue
			}
			out[snake(f.Name)] = fieldValue(v.Field(i))
		}
		return out
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return vecBytes(b)
		}
	case reflect.Slice:
		if v.Type() == byteSliceType {
			return vecBytes(v.Bytes())
		}
		out := []any{}
		for i := range v.Len() {
			out = append(out, fieldValue(v.Index(i)))
		}
		return out
	case reflect.Bool:
		return v.Bool()
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return json.Number(fmt.Sprint(v.Int()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return json.Number(fmt.Sprint(v.Uint()))
	}
	panic("fieldValue: " + v.Type().String())
}

func vecBytes(b []byte) map[string]string {
	if len(b) > 0 && !slices.ContainsFunc(b, func(c byte) bool { return c < 0x20 || c > 0x7e }) {
		return map[string]string{"utf8": string(b)}
	}
	return map[string]string{"hex": hex.EncodeToString(b)}
}

// snake turns a Go field name into the vectors' name: MinVersion ->
// min_version, CorrelationID -> correlation_id, UID -> uid, IDs -> ids.
func snake(s string) string {
	if s == "IDs" {
		return "ids"
	}
	var sb strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			sb.WriteByte('_')
		}
		sb.WriteRune(unicode.ToLower(c))
	}
	return sb.String()
}
