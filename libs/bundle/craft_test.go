package bundle_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"testing"
	"time"
)

// zent is one entry of a hand-made archive. Zero fields take the honest
// value; the pointer fields let a test make the archive lie.
type zent struct {
	name      string
	data      []byte
	deflate   bool
	creator   uint16  // "version made by" high byte; 3 (Unix) when zero and attrs unset
	attrs     *uint32 // external attributes; a regular 0644 Unix file when nil
	flags     uint16
	method    *uint16
	usize     *uint64 // declared unpacked size
	csize     *uint64 // declared packed size (the data written is the real one)
	crc       *uint32
	localName *string
	zip64     bool // sizes and offset in a ZIP64 extra field
}

// zopts change the archive around the entries.
type zopts struct {
	count    *uint64 // entries the end record declares
	comment  string
	prefix   []byte // bytes before the first local header
	adjusted bool   // offsets count the prefix, as zip -A makes them for a self-extracting archive
	trailing []byte // bytes after the end record
	zip64    bool   // a ZIP64 end record and locator
	disks    uint32 // disks the ZIP64 locator declares (1 when zero)
}

// unadjusted is what offsets leave out of the bytes before them: the
// prefix, unless the offsets were adjusted to count it.
func (o zopts) unadjusted() int {
	if o.adjusted {
		return 0
	}
	return len(o.prefix)
}

func u64(v uint64) *uint64 { return &v }
func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func str(s string) *string { return &s }

func deflated(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// craft writes a ZIP archive byte by byte, as archive/zip would not.
func craft(t testing.TB, entries []zent, o zopts) []byte {
	t.Helper()
	var out bytes.Buffer
	le := binary.LittleEndian
	put16 := func(b *bytes.Buffer, v uint16) { b.Write(le.AppendUint16(nil, v)) }
	put32 := func(b *bytes.Buffer, v uint32) { b.Write(le.AppendUint32(nil, v)) }
	out.Write(o.prefix)
	var cd bytes.Buffer
	for _, e := range entries {
		payload, method := e.data, uint16(0)
		if e.deflate {
			payload, method = deflated(t, e.data), 8
		}
		if e.method != nil {
			method = *e.method
		}
		crc := crc32.ChecksumIEEE(e.data)
		if e.crc != nil {
			crc = *e.crc
		}
		usize, csize := uint64(len(e.data)), uint64(len(payload))
		if e.usize != nil {
			usize = *e.usize
		}
		if e.csize != nil {
			csize = *e.csize
		}
		attrs := uint32(0o100644) << 16
		creator := e.creator
		if e.attrs != nil {
			attrs = *e.attrs
		} else if creator == 0 {
			creator = 3
		}
		local := e.name
		if e.localName != nil {
			local = *e.localName
		}
		offset := uint32(out.Len() - o.unadjusted())

		put32(&out, 0x04034b50)
		put16(&out, 20)
		put16(&out, e.flags)
		put16(&out, method)
		put16(&out, 0)    // time
		put16(&out, 0x21) // date: 1980-01-01
		put32(&out, crc)  //
		put32(&out, uint32(csize))
		put32(&out, uint32(usize))
		put16(&out, uint16(len(local)))
		put16(&out, 0)
		out.WriteString(local)
		out.Write(payload)

		put32(&cd, 0x02014b50)
		put16(&cd, creator<<8|20)
		put16(&cd, 20)
		put16(&cd, e.flags)
		put16(&cd, method)
		put16(&cd, 0)
		put16(&cd, 0x21)
		put32(&cd, crc)
		var extra bytes.Buffer
		cdU, cdC, cdOffset := uint32(usize), uint32(csize), offset
		if e.zip64 {
			cdU, cdC, cdOffset = 0xffffffff, 0xffffffff, 0xffffffff
			put16(&extra, 0x0001)
			put16(&extra, 24)
			extra.Write(le.AppendUint64(nil, usize))
			extra.Write(le.AppendUint64(nil, csize))
			extra.Write(le.AppendUint64(nil, uint64(offset)))
		}
		put32(&cd, cdC)
		put32(&cd, cdU)
		put16(&cd, uint16(len(e.name)))
		put16(&cd, uint16(extra.Len()))
		put16(&cd, 0) // comment
		put16(&cd, 0) // disk
		put16(&cd, 0) // internal attributes
		put32(&cd, attrs)
		put32(&cd, cdOffset)
		cd.WriteString(e.name)
		cd.Write(extra.Bytes())
	}
	cdOff := uint32(out.Len() - o.unadjusted())
	out.Write(cd.Bytes())
	count := uint64(len(entries))
	if o.count != nil {
		count = *o.count
	}
	count16, cdLen32, cdOff32 := uint16(count), uint32(cd.Len()), cdOff
	if o.zip64 {
		recOff := uint64(out.Len() - o.unadjusted())
		put32(&out, 0x06064b50)
		out.Write(le.AppendUint64(nil, 44))
		put16(&out, 45)
		put16(&out, 45)
		put32(&out, 0)
		put32(&out, 0)
		out.Write(le.AppendUint64(nil, count))
		out.Write(le.AppendUint64(nil, count))
		out.Write(le.AppendUint64(nil, uint64(cd.Len())))
		out.Write(le.AppendUint64(nil, uint64(cdOff)))
		disks := o.disks
		if disks == 0 {
			disks = 1
		}
		put32(&out, 0x07064b50)
		put32(&out, 0)
		out.Write(le.AppendUint64(nil, recOff))
		put32(&out, disks)
		count16, cdLen32, cdOff32 = 0xffff, 0xffffffff, 0xffffffff
	}
	put32(&out, 0x06054b50)
	put16(&out, 0)
	put16(&out, 0)
	put16(&out, count16)
	put16(&out, count16)
	put32(&out, cdLen32)
	put32(&out, cdOff32)
	put16(&out, uint16(len(o.comment)))
	out.WriteString(o.comment)
	out.Write(o.trailing)
	return out.Bytes()
}

// zfile is one file of an archive written with archive/zip, as ordinary
// tools write them.
type zfile struct {
	name  string
	body  string
	store bool
	mode  fs.FileMode // 0: none recorded
	mtime time.Time
}

func zipOf(t testing.TB, files ...zfile) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: f.mtime}
		if f.store {
			h.Method = zip.Store
		}
		if f.mode != 0 {
			h.SetMode(f.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const minimalManifest = `{"slug": "demo", "name": "Demo"}`

func manifestFile(body string) zfile { return zfile{name: "manifest.json", body: body} }
