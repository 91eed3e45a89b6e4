package davlock

import (
	"reflect"
	"testing"
)

func TestParseIf(t *testing.T) {
	tests := []struct {
		in   string
		want []IfList
	}{
		{`(<urn:uuid:1>)`, []IfList{{Conditions: []IfCondition{{Token: "urn:uuid:1"}}}}},
		{`(<urn:uuid:1> ["e1"]) (Not <DAV:no-lock> ["e1"])`, []IfList{
			{Conditions: []IfCondition{{Token: "urn:uuid:1"}, {ETag: `"e1"`}}},
			{Conditions: []IfCondition{{Not: true, Token: "DAV:no-lock"}, {ETag: `"e1"`}}},
		}},
		{`<http://h/a> (<urn:uuid:2>)`, []IfList{{Resource: "http://h/a", Conditions: []IfCondition{{Token: "urn:uuid:2"}}}}},
	}
	for _, tt := range tests {
		got, err := ParseIf(tt.in)
		if err != nil {
			t.Errorf("ParseIf(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseIf(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "()", "(Not)", "(<a>", "([e]", "x", "<a>"} {
		if _, err := ParseIf(bad); err == nil {
			t.Errorf("ParseIf(%q): got no error, want one", bad)
		}
	}
}

func FuzzParseIf(f *testing.F) {
	for _, seed := range []string{`(<urn:uuid:1>)`, `<http://h/a> (Not <DAV:no-lock> [W/"x"])`, `((`, `(Not Not <a>)`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lists, err := ParseIf(s)
		if err != nil {
			return
		}
		again, err := ParseIf(FormatIf(lists))
		if err != nil || !reflect.DeepEqual(again, lists) {
			t.Errorf("FormatIf(ParseIf(%q)) does not parse back: %v", s, err)
		}
	})
}
