package httpx

import "testing"

func TestPickEncoding(t *testing.T) {
	for _, tc := range []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, br", "br"},
		{"br, gzip", "br"},
		{"GZIP", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"br;q=0.5, gzip", "gzip"},
		{"gzip;q=0.8, br;q=0.9", "br"},
		{"gzip;q=1.0, br;q=1.0", "br"},
		{"br;q=0, gzip;q=0.1", "gzip"},
		{"br;q=0, gzip;q=0", ""},
		{"gzip;q=0", ""},
		{"*", "br"},
		{"*;q=0", ""},
		{"gzip;q=0, *", "br"},
		{"br;q=0, *;q=0.5", "gzip"},
		{"br;q=0.2, *;q=0.9", "gzip"},
		{"identity", ""},
		{"deflate", ""},
		{"br; q=0 , gzip", "gzip"},
		{"br;Q=0, gzip", "gzip"},
		{"gzip;q=abc", ""},
		{"gzip;q=-1", ""},
		{"gzip;q=7", "gzip"},
		{"gzip;level=9;q=0.5", "gzip"},
		{" , ,gzip", "gzip"},
	} {
		if got := pickEncoding(tc.accept); got != tc.want {
			t.Errorf("pickEncoding(%q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}

func FuzzPickEncoding(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", "*;q=0", "br;q=", ";;;", "q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		switch got := pickEncoding(accept); got {
		case "", "br", "gzip":
		default:
			t.Fatalf("pickEncoding(%q) = %q", accept, got)
		}
	})
}
