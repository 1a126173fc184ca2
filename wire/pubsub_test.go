package wire

import (
	"errors"
	"testing"
)

func TestFilterRoundTripsThroughSubscribeExt(t *testing.T) {
	f := Filter{HasType: true, TypeMin: -5, TypeMax: 7,
		Equals:  []KV{{Key: []byte("region"), Value: []byte("eu")}, {Key: []byte("k"), Value: nil}},
		Present: [][]byte{[]byte("trace")}}
	s := Subscribe{Pattern: []byte("a.*"), Buffer: 1, Ext: AppendFilter(nil, &f)}
	var got Subscribe
	if err := got.Decode(s.Append(nil)); err != nil {
		t.Fatal(err)
	}
	g, err := ParseFilter(got.Ext)
	if err != nil {
		t.Fatal(err)
	}
	if !g.HasType || g.TypeMin != -5 || g.TypeMax != 7 || len(g.Equals) != 2 || string(g.Equals[0].Value) != "eu" ||
		len(g.Equals[1].Value) != 0 || len(g.Present) != 1 || string(g.Present[0]) != "trace" {
		t.Fatalf("got %+v", g)
	}
}

func TestParseFilterRefusesBrokenConditions(t *testing.T) {
	cases := []struct {
		name string
		ext  []byte
		want error
	}{
		{"type too short", AppendExt(nil, TagFilterType, make([]byte, 15)), ErrMalformed},
		{"min above max", AppendFilter(nil, &Filter{HasType: true, TypeMin: 2, TypeMax: 1}), ErrInvalid},
		{"type twice", AppendFilter(AppendFilter(nil, &Filter{HasType: true}), &Filter{HasType: true}), ErrInvalid},
		{"key past the entry", AppendExt(nil, TagFilterEquals, []byte{5, 'a'}), ErrMalformed},
		{"bad key byte", AppendFilter(nil, &Filter{Present: [][]byte{[]byte("a b")}}), ErrInvalid},
		{"empty key", AppendExt(nil, TagFilterPresent, nil), ErrInvalid},
		{"tail runs past the end", []byte{1, 0, 9, 0}, ErrMalformed},
	}
	many := Filter{}
	for range MaxFilterConds + 1 {
		many.Present = append(many.Present, []byte("k"))
	}
	cases = append(cases, struct {
		name string
		ext  []byte
		want error
	}{"too many conditions", AppendFilter(nil, &many), ErrInvalid})
	for _, c := range cases {
		if _, err := ParseFilter(c.ext); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if f, err := ParseFilter(AppendExt(nil, 0x0042, []byte("x"))); err != nil || f.HasType {
		t.Errorf("an unknown non-critical tag: %+v %v", f, err)
	}
}

func TestTopicsReplyCountPastThePayloadIsMalformed(t *testing.T) {
	var m TopicsReply
	if err := m.Decode(AppendU32(nil, 1<<30)); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func FuzzParseFilter(f *testing.F) {
	f.Add(AppendFilter(nil, &Filter{HasType: true, Equals: []KV{{Key: []byte("a"), Value: []byte("b")}}, Present: [][]byte{[]byte("c")}}))
	f.Fuzz(func(t *testing.T, ext []byte) {
		g, err := ParseFilter(ext)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
			return
		}
		again, err := ParseFilter(AppendFilter(nil, &g))
		if err != nil || again.HasType != g.HasType || len(again.Equals) != len(g.Equals) || len(again.Present) != len(g.Present) {
			t.Fatalf("re-encoded filter: %+v %v", again, err)
		}
	})
}
