package apitest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
)

// zipEntry is one entry of a hand-made archive.
type zipEntry struct {
	name string
	data []byte
	mode fs.FileMode
	// declared, when set, is the unpacked size the archive claims.
	declared uint64
	nonUTF8  bool
	store    bool
}

func craft(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, NonUTF8: e.nonUTF8}
		if e.store {
			h.Method = zip.Store
		}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		if e.declared == 0 {
			w, err := zw.CreateHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.data)
			continue
		}
		// A raw entry whose header lies about its unpacked size.
		var comp bytes.Buffer
		fw, _ := flate.NewWriter(&comp, flate.BestCompression)
		fw.Write(e.data)
		fw.Close()
		h.CompressedSize64 = uint64(comp.Len())
		h.UncompressedSize64 = e.declared
		h.CRC32 = 0
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, data string) zipEntry { return zipEntry{name: name, data: []byte(data)} }

func noise(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Every hostile archive is refused with its own code, and leaves the
// database and the object stores as they were.
func TestHostileUploads(t *testing.T) {
	p := startPlatform(t, 1, map[string]string{"MAX_UPLOAD_SIZE_MB": "1"})
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	m := manifest("hostile", nil)
	good := []zipEntry{file("manifest.json", m), file("index.html", "<p>ok</p>")}
	with := func(extra ...zipEntry) []byte { return craft(t, append(append([]zipEntry{}, good...), extra...)...) }
	valid := with()
	many := make([]zipEntry, 0, 10_002)
	many = append(many, good...)
	for i := 0; i < 10_001; i++ {
		many = append(many, zipEntry{name: itoa(i), data: nil, store: true})
	}

	cases := []struct {
		name   string
		body   []byte
		raw    bool
		status int
		code   string
	}{
		{"not a zip", []byte("this is plain text, not an archive"), false, 400, "bundle_not_zip"},
		{"empty body", []byte{}, true, 400, "bundle_not_zip"},
		{"truncated", valid[:len(valid)/2], false, 400, "bundle_truncated"},
		{"over the upload limit", craft(t, append(good, zipEntry{name: "big.bin", data: noise(1<<20 + 1000), store: true})...), false, 413, "bundle_too_large"},
		{"declared unpacked total over the limit", with(liars(11)...), false, 413, "bundle_unpacked_too_large"},
		{"too many entries", craft(t, many...), true, 413, "bundle_too_many_entries"},
		{"zip bomb by ratio", with(zipEntry{name: "zeros.txt", data: make([]byte, 4<<20)}), false, 400, "bundle_zip_bomb"},
		{"absolute path", with(file("/etc/passwd", "x")), false, 400, "bundle_unsafe_path"},
		{"dot-dot", with(file("../escape.txt", "x")), false, 400, "bundle_unsafe_path"},
		{"dot-dot inside", with(file("a/../../escape.txt", "x")), false, 400, "bundle_unsafe_path"},
		{"backslash", with(file("..\\escape.txt", "x")), false, 400, "bundle_unsafe_path"},
		{"drive letter", with(file("C:/windows/system.ini", "x")), false, 400, "bundle_unsafe_path"},
		{"symlink", with(zipEntry{name: "link", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}), false, 400, "bundle_not_regular_file"},
		{"named pipe", with(zipEntry{name: "fifo", mode: fs.ModeNamedPipe | 0o644}), false, 400, "bundle_not_regular_file"},
		{"duplicate after normalisation", with(file("a/b.txt", "1"), file("a//b.txt", "2")), false, 400, "bundle_duplicate_name"},
		{"duplicate with dot", with(file("c.txt", "1"), file("./c.txt", "2")), false, 400, "bundle_duplicate_name"},
		{"name not UTF-8", with(zipEntry{name: "bad\xff\xfe.txt", data: []byte("x"), nonUTF8: true}), false, 400, "bundle_bad_name"},
		{"no manifest", craft(t, file("index.html", "x")), false, 422, "manifest_missing"},
		{"manifest not JSON", craft(t, file("manifest.json", "{nope"), file("index.html", "x")), false, 422, "manifest_malformed"},
		{"manifest bad slug", craft(t, file("manifest.json", `{"slug":"Bad Slug!","name":"x"}`), file("index.html", "x")), false, 422, "manifest_invalid"},
		{"actor module missing", craft(t, file("manifest.json", manifest("hostile", map[string]any{"actor": map[string]any{"module": "actor.wasm"}})), file("index.html", "x")), false, 422, "actor_module_missing"},
		{"export layout, other slug", craft(t, file("experiments/other/manifest.json", m), file("experiments/other/index.html", "x")), false, 422, "manifest_slug_mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, objs := stored(t, p)
			admin.t = t
			var r response
			if c.raw {
				r = admin.uploadRaw(c.body)
			} else {
				r = admin.upload(c.body)
			}
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
			if after, objsAfter := stored(t, p); after != before || objsAfter != objs {
				t.Fatalf("a refused upload stored something: %d/%d → %d/%d", before, objs, after, objsAfter)
			}
		})
	}
	// The valid archive, and the export layout of it, are accepted; platform
	// files are dropped without error.
	admin.t = t
	if r := admin.upload(with(file("__MACOSX/._index.html", "x"), file(".DS_Store", "x"), file("__pycache__/a.pyc", "x"), file(".gnome/export.json", "{}"))); r.status != 201 {
		t.Fatalf("valid upload with platform files: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/experiments/hostile/.DS_Store", nil, nil); r.status != 404 {
		t.Fatalf("platform file served: %d", r.status)
	}
	exported := craft(t, file("experiments/hostile/manifest.json", m), file("experiments/hostile/index.html", "<p>exported</p>"), file("README.md", "wrapper"))
	if r := admin.upload(exported); r.status != 201 {
		t.Fatalf("export layout: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/experiments/hostile/", nil, nil); string(r.body) != "<p>exported</p>" {
		t.Fatalf("export layout served %q", r.body)
	}
	_ = io.EOF
}

// liars are n entries each claiming to unpack to 1 MiB (small enough to
// escape the ratio check) while holding a few bytes.
func liars(n int) []zipEntry {
	out := make([]zipEntry, n)
	for i := range out {
		out[i] = zipEntry{name: "liar" + itoa(i) + ".txt", data: []byte("small"), declared: 1 << 20}
	}
	return out
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}
