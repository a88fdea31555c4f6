package jsondepth_test

import (
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/jsondepth"
)

func TestExceeds(t *testing.T) {
	cases := []struct {
		data string
		max  int
		want bool
	}{
		{`{}`, 1, false},
		{`{"a":{"b":[1]}}`, 3, false},
		{`{"a":{"b":[1]}}`, 2, true},
		{`{"a":"{{{{[[[["}`, 1, false},
		{`{"a":"\"{{{"}`, 1, false},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), 64, true},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), 64, false},
	}
	for _, c := range cases {
		if got := jsondepth.Exceeds([]byte(c.data), c.max); got != c.want {
			t.Errorf("Exceeds(%q, %d) = %v, want %v", c.data, c.max, got, c.want)
		}
	}
}
