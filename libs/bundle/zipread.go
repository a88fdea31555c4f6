package bundle

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"sort"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// The archive is read here rather than with archive/zip so that nothing is
// trusted before it is checked: archive/zip keeps reading central directory
// headers past the count the end record declares (an archive of tiny headers
// would cost hundreds of bytes of memory per header), and does not check that
// local headers agree with the central directory or that entries do not
// overlap (the trick of non-recursive zip bombs).

const (
	sigLocal     = 0x04034b50
	sigCentral   = 0x02014b50
	sigEnd       = 0x06054b50
	sigEnd64     = 0x06064b50
	sigEnd64Loc  = 0x07064b50
	endLen       = 22
	end64LocLen  = 20
	end64Len     = 56
	centralLen   = 46
	localLen     = 30
	maxComment   = 0xffff
	zip64ExtraID = 0x0001

	methodStore   = 0
	methodDeflate = 8

	flagEncrypted       = 0x1
	flagStrongEncrypted = 0x40
	flagMaskedHeaders   = 0x2000

	creatorFAT   = 0
	creatorUnix  = 3
	creatorNTFS  = 11
	creatorVFAT  = 14
	creatorMacOS = 19

	unixTypeMask = 0xf000
	unixRegular  = 0x8000
	unixDir      = 0x4000
	unixSymlink  = 0xa000
	msdosDir     = 0x10
	msdosReparse = 0x400
)

// entry is one central directory record, checked.
type entry struct {
	raw    string // the name as the archive stores it
	path   string // normalised, relative to the archive's root
	dir    bool
	mode   fs.FileMode
	method uint16
	crc    uint32
	csize  uint64
	usize  uint64
	offset uint64 // of the local header
	data   int64  // offset of the data, after the local header
}

// errShort marks a read that found the archive shorter than it says.
var errShort = errors.New("archive ends early")

func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return errShort
	}
	return fmt.Errorf("read bundle: %w", err)
}

// ioError turns a read failure into the refusal it means: the archive is
// short, or the reader itself failed (not the uploader's fault).
func ioError(err error, format string, args ...any) error {
	if errors.Is(err, errShort) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierr.New(apierr.CodeBundleTruncated, format, args...)
	}
	return err
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// directory is where the end records place the central directory.
type directory struct {
	count  uint64
	offset uint64
	size   uint64
}

// findDirectory reads the end of central directory record (and its ZIP64
// form) and checks it against the archive's size and the limits.
func findDirectory(r io.ReaderAt, size int64, lim Limits) (directory, error) {
	var d directory
	tail := min(size, endLen+maxComment)
	buf := make([]byte, tail)
	if err := readAt(r, buf, size-tail); err != nil {
		return d, ioError(err, "the archive ends early")
	}
	// The record is the last signature whose comment ends exactly at the end
	// of the archive; anything after the comment is refused as garbage.
	at, followed := -1, false
	for i := len(buf) - endLen; i >= 0; i-- {
		if le32(buf[i:]) != sigEnd {
			continue
		}
		if end := i + endLen + int(le16(buf[i+20:])); end == len(buf) {
			at = i
			break
		} else if end < len(buf) {
			followed = true
		}
	}
	if at < 0 {
		if followed {
			return d, apierr.New(apierr.CodeBundleCorrupt, "data follows the ZIP archive's end record")
		}
		head := make([]byte, 4)
		if size >= 4 && readAt(r, head, 0) == nil && le32(head) == sigLocal {
			return d, apierr.New(apierr.CodeBundleTruncated, "the ZIP archive is cut short: its end record is missing")
		}
		return d, apierr.New(apierr.CodeBundleNotZip, "the upload is not a ZIP archive")
	}
	endOff := size - tail + int64(at)
	e := buf[at : at+endLen]
	disk, cdDisk := uint32(le16(e[4:])), uint32(le16(e[6:]))
	onDisk, count := uint64(le16(e[8:])), uint64(le16(e[10:]))
	d.size, d.offset = uint64(le32(e[12:])), uint64(le32(e[16:]))
	cdEnd := uint64(endOff)

	if endOff >= end64LocLen {
		loc := make([]byte, end64LocLen)
		if err := readAt(r, loc, endOff-end64LocLen); err != nil {
			return d, ioError(err, "the archive ends early")
		}
		if le32(loc) == sigEnd64Loc {
			recOff, disks := le64(loc[8:]), le32(loc[16:])
			if le32(loc[4:]) != 0 || disks > 1 {
				return d, apierr.New(apierr.CodeBundleUnsupported, "the ZIP archive spans several disks")
			}
			if recOff > uint64(endOff-end64LocLen) || uint64(endOff-end64LocLen)-recOff < end64Len {
				return d, apierr.New(apierr.CodeBundleCorrupt, "the ZIP64 end record is not where its locator places it")
			}
			rec := make([]byte, end64Len)
			if err := readAt(r, rec, int64(recOff)); err != nil {
				return d, ioError(err, "the archive ends early")
			}
			if le32(rec) != sigEnd64 {
				return d, apierr.New(apierr.CodeBundleCorrupt, "the ZIP64 end record is not where its locator places it")
			}
			disk, cdDisk = le32(rec[16:]), le32(rec[20:])
			onDisk, count = le64(rec[24:]), le64(rec[32:])
			d.size, d.offset = le64(rec[40:]), le64(rec[48:])
			cdEnd = recOff
		}
	}
	if disk != 0 || cdDisk != 0 || onDisk != count {
		return d, apierr.New(apierr.CodeBundleUnsupported, "the ZIP archive spans several disks")
	}
	if count > uint64(lim.MaxEntries) {
		return d, apierr.New(apierr.CodeBundleTooManyEntries, "the ZIP archive has %d entries, over the limit of %d", count, lim.MaxEntries)
	}
	if d.offset > cdEnd || d.size != cdEnd-d.offset {
		return d, apierr.New(apierr.CodeBundleCorrupt, "the central directory is not where the end record places it (data before or after the archive is not accepted)")
	}
	d.count = count
	return d, nil
}

// readDirectory reads and checks every central directory record: names,
// entry types, methods, sizes and ratios, before any data is read.
func readDirectory(r io.ReaderAt, d directory, lim Limits) ([]entry, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, int64(d.offset), int64(d.size)), 64<<10)
	entries := make([]entry, 0, d.count)
	hdr := make([]byte, centralLen)
	var extra []byte
	var total uint64
	for i := uint64(0); i < d.count; i++ {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return nil, dirError(err, d.count)
		}
		if le32(hdr) != sigCentral {
			return nil, apierr.New(apierr.CodeBundleCorrupt, "central directory record %d has a bad signature", i+1)
		}
		creator := le16(hdr[4:]) >> 8
		flags, method := le16(hdr[8:]), le16(hdr[10:])
		e := entry{
			method: method,
			crc:    le32(hdr[16:]),
			csize:  uint64(le32(hdr[20:])),
			usize:  uint64(le32(hdr[24:])),
			offset: uint64(le32(hdr[42:])),
		}
		nameLen, extraLen, commentLen := int(le16(hdr[28:])), int(le16(hdr[30:])), int(le16(hdr[32:]))
		attrs := le32(hdr[38:])
		if nameLen > maxNameLen {
			return nil, apierr.New(apierr.CodeBundleBadName, "central directory record %d: the name is %d bytes long, over the limit of %d", i+1, nameLen, maxNameLen)
		}
		name := make([]byte, nameLen)
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, dirError(err, d.count)
		}
		e.raw = string(name)
		if cap(extra) < extraLen {
			extra = make([]byte, extraLen)
		}
		extra = extra[:extraLen]
		if _, err := io.ReadFull(br, extra); err != nil {
			return nil, dirError(err, d.count)
		}
		if _, err := br.Discard(commentLen); err != nil {
			return nil, dirError(err, d.count)
		}
		if err := e.zip64(extra); err != nil {
			return nil, err
		}
		if err := e.check(creator, flags, attrs, lim); err != nil {
			return nil, err
		}
		if e.usize > uint64(lim.MaxUnpacked)-total {
			return nil, apierr.New(apierr.CodeBundleUnpackedTooLarge, "the ZIP archive's entries unpack to more than the limit of %d bytes (reached at entry %q)", lim.MaxUnpacked, e.raw)
		}
		total += e.usize
		entries = append(entries, e)
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, apierr.New(apierr.CodeBundleCorrupt, "the central directory holds more than the %d entries the end record declares", d.count)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return entries, nil
}

func dirError(err error, count uint64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierr.New(apierr.CodeBundleCorrupt, "the central directory ends before the %d entries the end record declares", count)
	}
	return fmt.Errorf("read bundle: %w", err)
}

// zip64 takes the sizes and offset that do not fit 32 bits from the ZIP64
// extra field.
func (e *entry) zip64(extra []byte) error {
	need := e.usize == 0xffffffff || e.csize == 0xffffffff || e.offset == 0xffffffff
	for len(extra) >= 4 {
		id, n := le16(extra), int(le16(extra[2:]))
		if n > len(extra)-4 {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: an extra field runs past its header", e.raw)
		}
		field := extra[4 : 4+n]
		extra = extra[4+n:]
		if id != zip64ExtraID || !need {
			continue
		}
		for _, v := range []*uint64{&e.usize, &e.csize, &e.offset} {
			if *v != 0xffffffff {
				continue
			}
			if len(field) < 8 {
				return apierr.New(apierr.CodeBundleCorrupt, "entry %q: the ZIP64 extra field is short", e.raw)
			}
			*v, field = le64(field), field[8:]
		}
		need = false
	}
	return nil
}

// check applies every test that needs only the central directory record.
func (e *entry) check(creator, flags uint16, attrs uint32, lim Limits) error {
	path, dir, err := normaliseName(e.raw)
	if err != nil {
		return err
	}
	e.path, e.dir = path, dir

	e.mode = 0o644
	if creator == creatorUnix || creator == creatorMacOS {
		mode := attrs >> 16
		switch mode & unixTypeMask {
		case 0, unixRegular:
		case unixDir:
			e.dir = true
		case unixSymlink:
			return apierr.New(apierr.CodeBundleNotRegularFile, "entry %q is a symbolic link", e.raw)
		default:
			return apierr.New(apierr.CodeBundleNotRegularFile, "entry %q is a device, pipe or socket, not a regular file", e.raw)
		}
		if mode != 0 {
			e.mode = fs.FileMode(mode & 0o777)
		}
	}
	if attrs&msdosReparse != 0 && (creator == creatorFAT || creator == creatorNTFS || creator == creatorVFAT) {
		return apierr.New(apierr.CodeBundleNotRegularFile, "entry %q is a reparse point (a link), not a regular file", e.raw)
	}
	if attrs&msdosDir != 0 && (creator == creatorFAT || creator == creatorNTFS || creator == creatorVFAT) {
		e.dir = true
	}
	if e.dir {
		if e.usize != 0 {
			return apierr.New(apierr.CodeBundleNotRegularFile, "entry %q is a directory that holds %d bytes of data", e.raw, e.usize)
		}
		e.mode = fs.ModeDir | 0o755
		return nil
	}

	if flags&(flagEncrypted|flagStrongEncrypted|flagMaskedHeaders) != 0 {
		return apierr.New(apierr.CodeBundleUnsupported, "entry %q is encrypted", e.raw)
	}
	switch e.method {
	case methodStore:
		if e.csize != e.usize {
			return apierr.New(apierr.CodeBundleEntrySizeMismatch, "entry %q is stored uncompressed but declares %d bytes stored and %d unpacked", e.raw, e.csize, e.usize)
		}
	case methodDeflate:
	default:
		return apierr.New(apierr.CodeBundleUnsupported, "entry %q uses compression method %d; only stored (0) and deflate (8) are accepted", e.raw, e.method)
	}
	if e.usize > uint64(lim.RatioFloor) && float64(e.usize) > lim.MaxRatio*float64(max(e.csize, 1)) {
		return apierr.New(apierr.CodeBundleZipBomb, "entry %q unpacks %d bytes to %d, a ratio over the limit of %g", e.raw, e.csize, e.usize, lim.MaxRatio)
	}
	return nil
}

// readLocalHeaders finds each entry's data behind its local header, checks
// that the header agrees with the central directory, and that no two entries
// share bytes.
func readLocalHeaders(r io.ReaderAt, entries []entry, dirOffset uint64) error {
	buf := make([]byte, localLen+maxNameLen)
	for i := range entries {
		e := &entries[i]
		n := uint64(localLen + len(e.raw))
		if e.offset > dirOffset || dirOffset-e.offset < n {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: its local header lies outside the archive's data", e.raw)
		}
		h := buf[:n]
		if err := readAt(r, h, int64(e.offset)); err != nil {
			return ioError(err, "entry %q: the archive ends inside its local header", e.raw)
		}
		if le32(h) != sigLocal {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: the local header has a bad signature", e.raw)
		}
		if int(le16(h[26:])) != len(e.raw) || string(h[localLen:]) != e.raw {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: the local header names another file", e.raw)
		}
		if le16(h[8:]) != e.method {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: the local header gives another compression method", e.raw)
		}
		data := e.offset + n + uint64(le16(h[28:]))
		if data > dirOffset || dirOffset-data < e.csize {
			return apierr.New(apierr.CodeBundleCorrupt, "entry %q: its data runs into the central directory", e.raw)
		}
		e.data = int64(data)
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return entries[order[a]].offset < entries[order[b]].offset })
	// An archive starts with its first entry (or, empty, with its central
	// directory): bytes before it, such as a self-extracting stub whose
	// offsets were adjusted to count it, would be kept by no one and
	// checked by nothing.
	first := dirOffset
	if len(order) > 0 {
		first = entries[order[0]].offset
	}
	if first != 0 {
		return apierr.New(apierr.CodeBundleCorrupt, "%d bytes come before the archive's first entry; data before or after the archive is not accepted", first)
	}
	for k := 1; k < len(order); k++ {
		prev, cur := &entries[order[k-1]], &entries[order[k]]
		if uint64(prev.data)+prev.csize > cur.offset {
			return apierr.New(apierr.CodeBundleCorrupt, "entries %q and %q overlap", prev.raw, cur.raw)
		}
	}
	return nil
}

// entryReader unpacks one entry, refusing it as soon as it yields more than
// its declared size, and checking its size and CRC-32 at the end. Memory is
// one decompressor window, whatever the entry's size.
type entryReader struct {
	e    *entry
	src  *sourceReader
	dec  io.Reader
	crc  hash.Hash32
	n    uint64
	done bool
}

// sourceReader remembers a failure of the underlying reader, so that it is
// not mistaken for damaged data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

func openEntry(r io.ReaderAt, e *entry) *entryReader {
	src := &sourceReader{r: io.NewSectionReader(r, e.data, int64(e.csize))}
	er := &entryReader{e: e, src: src, crc: crc32.NewIEEE()}
	var dec io.Reader = src
	if e.method == methodDeflate {
		dec = flate.NewReader(src)
	}
	// One byte past the declared size is enough to know that it lies.
	er.dec = io.LimitReader(dec, int64(e.usize)+1)
	return er
}

func (er *entryReader) Read(p []byte) (int, error) {
	if er.done {
		return 0, io.EOF
	}
	n, err := er.dec.Read(p)
	if uint64(n) > er.e.usize-er.n {
		return 0, apierr.New(apierr.CodeBundleEntrySizeMismatch, "entry %q unpacks to more than the %d bytes it declares", er.e.raw, er.e.usize)
	}
	er.n += uint64(n)
	er.crc.Write(p[:n])
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF) && er.src.err == nil:
		er.done = true
		if er.n != er.e.usize {
			return n, apierr.New(apierr.CodeBundleEntrySizeMismatch, "entry %q unpacks to %d bytes, not the %d it declares", er.e.raw, er.n, er.e.usize)
		}
		if er.crc.Sum32() != er.e.crc {
			return n, apierr.New(apierr.CodeBundleCorrupt, "entry %q: the data does not match its CRC-32", er.e.raw)
		}
		return n, io.EOF
	case er.src.err != nil:
		return n, fmt.Errorf("read bundle entry %q: %w", er.e.raw, er.src.err)
	default:
		return n, apierr.New(apierr.CodeBundleCorrupt, "entry %q: the compressed data is damaged (%v)", er.e.raw, err)
	}
}
