// Command hostile is an actor, written with the SDK, that misbehaves on
// request: each route tries one thing an actor must not be able to do, or
// must not be able to do harm with.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

func init() {
	actorsdk.Route("GET", "/ok", func(*actorsdk.Request) *actorsdk.Response { return actorsdk.Text(200, "ok") })
	actorsdk.Route("GET", "/loop", loop)
	actorsdk.Route("GET", "/hog", hog)
	actorsdk.Route("GET", "/huge", huge)
	actorsdk.Route("GET", "/panic", func(*actorsdk.Request) *actorsdk.Response { panic("hostile: boom") })
	actorsdk.Route("GET", "/exit", func(*actorsdk.Request) *actorsdk.Response { os.Exit(3); return nil })
	actorsdk.Route("GET", "/file", files)
	actorsdk.Route("GET", "/socket", sockets)
	actorsdk.Route("GET", "/flood", flood)
	actorsdk.Route("GET", "/data", data)
	actorsdk.Route("GET", "/bulk", bulk)
	actorsdk.Route("GET", "/kv-big", kvBig)
	actorsdk.Route("GET", "/state", state)
	actorsdk.Route("GET", "/sleep", sleep)
	actorsdk.Route("GET", "/print", printFlood)
	actorsdk.Route("GET", "/recurse", func(*actorsdk.Request) *actorsdk.Response { return actorsdk.JSON(200, recurse(0)) })

	// Starting can be made to hang: config {"sleep_in": "initialize"} sleeps
	// for an hour in the runtime's initialisation (Go's init functions run
	// in _initialize), {"sleep_in": "gnome_init"} in gnome_init.
	if actorsdk.Config()["sleep_in"] == "initialize" {
		time.Sleep(time.Hour)
	}
	actorsdk.OnInit(func(in actorsdk.Init) error {
		if actorsdk.Config()["sleep_in"] == "gnome_init" {
			time.Sleep(time.Hour)
		}
		return nil
	})
}

var sink int

// loop never returns: the platform must stop it at its time limit.
func loop(*actorsdk.Request) *actorsdk.Response {
	for i := 0; ; i++ {
		sink = i
	}
}

var hoard [][]byte

// hog allocates until the memory limit is reached, writing to every page
// so that the host really provides it.
func hog(*actorsdk.Request) *actorsdk.Response {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
}

// huge answers with ?mb= MiB of body.
func huge(req *actorsdk.Request) *actorsdk.Response {
	mb, _ := strconv.Atoi(req.Query.Get("mb"))
	return actorsdk.Bytes(200, "application/octet-stream", make([]byte, mb<<20))
}

//go:wasmimport wasi_snapshot_preview1 path_open
func pathOpen(fd int32, dirflags int32, path unsafe.Pointer, pathLen uint32, oflags int32, rightsBase uint64, rightsInheriting uint64, fdflags int32, result unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_accept
func sockAccept(fd int32, flags int32, result unsafe.Pointer) uint32

// files tries to reach the filesystem every way it can and reports each
// attempt's error ("" would mean it worked).
func files(*actorsdk.Request) *actorsdk.Response {
	out := map[string]string{}
	try := func(name string, err error) {
		if err != nil {
			out[name] = err.Error()
		} else {
			out[name] = ""
		}
	}
	f, err := os.Open("/etc/passwd")
	if err == nil {
		f.Close()
	}
	try("open /etc/passwd", err)
	try("create /tmp/hostile", os.WriteFile("/tmp/hostile", []byte("x"), 0o644))
	_, err = os.ReadDir("/")
	try("read dir /", err)
	_, err = os.ReadFile("actor.wasm")
	try("read actor.wasm", err)
	for fd := int32(3); fd <= 5; fd++ {
		name := "etc/passwd"
		var opened int32
		errno := pathOpen(fd, 0, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), 0, 1<<1, 0, 0, unsafe.Pointer(&opened))
		try(fmt.Sprintf("path_open on fd %d", fd), errnoError(errno))
	}
	out["environment"] = strconv.Itoa(len(os.Environ()))
	out["arguments"] = strconv.Itoa(len(os.Args))
	return actorsdk.JSON(200, out)
}

// sockets tries to connect to ?addr=, to accept connections on every
// descriptor and to resolve a name. (Go's own net.Listen works on wasip1,
// but only within the module: Go emulates a network in memory there.)
func sockets(req *actorsdk.Request) *actorsdk.Response {
	out := map[string]string{}
	try := func(name string, err error) {
		if err != nil {
			out[name] = err.Error()
		} else {
			out[name] = ""
		}
	}
	addr := req.Query.Get("addr")
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	try("dial tcp "+addr, err)
	c, err = net.DialTimeout("udp", addr, 100*time.Millisecond)
	if err == nil {
		_, err = c.Write([]byte("hello"))
		c.Close()
	}
	try("send udp to "+addr, err)
	_, err = net.LookupHost("example.com")
	try("resolve", err)
	for fd := int32(0); fd <= 8; fd++ {
		var accepted int32
		try(fmt.Sprintf("sock_accept on fd %d", fd), errnoError(sockAccept(fd, 0, unsafe.Pointer(&accepted))))
	}
	return actorsdk.JSON(200, out)
}

func errnoError(errno uint32) error {
	if errno == 0 {
		return nil
	}
	return fmt.Errorf("errno %d", errno)
}

// flood calls the host as fast as it can, forever.
func flood(*actorsdk.Request) *actorsdk.Response {
	for {
		_ = actorsdk.Call("config", nil, nil)
	}
}

// data makes a data call the platform must refuse; ?case= picks which.
func data(req *actorsdk.Request) *actorsdk.Response {
	var err error
	switch req.Query.Get("case") {
	case "foreign-read":
		_, err = actorsdk.DBFrom("clicks", "clicks").Find(nil)
	case "foreign-write":
		err = actorsdk.Call("db.insert", actorsdk.M{"collection": "clicks", "slug": "clicks", "documents": actorsdk.A{actorsdk.M{"x": 1}}}, nil)
	case "lookup":
		_, err = actorsdk.DB("notes").Aggregate(actorsdk.A{actorsdk.M{"$lookup": actorsdk.M{"from": "clicks_clicks", "localField": "a", "foreignField": "b", "as": "c"}}})
	case "nested-union":
		_, err = actorsdk.DB("notes").Aggregate(actorsdk.A{actorsdk.M{"$match": actorsdk.M{"$expr": actorsdk.M{"$unionWith": "clicks_clicks"}}}})
	case "where":
		_, err = actorsdk.DB("notes").Find(actorsdk.M{"$where": "sleep(1000) || true"})
	case "collection-path":
		_, err = actorsdk.DB("../clicks").Count(nil)
	case "full-name":
		_, err = actorsdk.DB("clicks_clicks.x").Count(nil)
	case "claim-other":
		_, err = actorsdk.DB("notes").InsertOne(actorsdk.M{"experiment_id": "clicks"})
	case "unknown-op":
		err = actorsdk.Call("db.drop", actorsdk.M{"collection": "notes"}, nil)
	default:
		return actorsdk.Error(400, actorsdk.CodeBadRequest, "no such case")
	}
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.Text(200, "the platform allowed it")
}

// bulk stores ?n= documents of ?size= bytes and reads them back in one
// result, larger than the SDK's buffer.
func bulk(req *actorsdk.Request) *actorsdk.Response {
	n, _ := strconv.Atoi(req.Query.Get("n"))
	size, _ := strconv.Atoi(req.Query.Get("size"))
	c := actorsdk.DB("bulk")
	if _, err := c.DeleteMany(nil); err != nil {
		return actorsdk.Fail(err)
	}
	docs := make([]actorsdk.M, n)
	for i := range docs {
		docs[i] = actorsdk.M{"i": i, "pad": strings.Repeat(string(rune('a'+i%26)), size)}
	}
	if _, err := c.InsertMany(docs); err != nil {
		return actorsdk.Fail(err)
	}
	found, err := c.Find(nil, actorsdk.Sort(actorsdk.D{{Key: "i", Value: 1}}))
	if err != nil {
		return actorsdk.Fail(err)
	}
	var back []struct {
		I   int    `json:"i"`
		Pad string `json:"pad"`
	}
	if err := found.Decode(&back); err != nil {
		return actorsdk.Fail(err)
	}
	h := sha256.New()
	for _, d := range back {
		h.Write([]byte(d.Pad))
	}
	return actorsdk.JSON(200, actorsdk.M{"count": len(back), "sha256": hex.EncodeToString(h.Sum(nil))})
}

// kvBig stores the largest value the key-value store takes, reads it back,
// and tries one byte more.
func kvBig(*actorsdk.Request) *actorsdk.Response {
	v := make([]byte, 64<<10)
	for i := range v {
		v[i] = byte(i * 7)
	}
	if _, err := actorsdk.KV().Put("big", v); err != nil {
		return actorsdk.Fail(err)
	}
	got, rev, err := actorsdk.KV().Get("big")
	if err != nil {
		return actorsdk.Fail(err)
	}
	_, overErr := actorsdk.KV().Put("big", append(v, 0))
	code := ""
	if he, ok := overErr.(*actorsdk.HostError); ok {
		code = he.Code
	}
	return actorsdk.JSON(200, actorsdk.M{"equal": string(got) == string(v), "revision": rev, "over_limit": code})
}

var (
	served int
	busy   bool
)

// state counts the requests the instance served and notices a second
// request arriving while one is being served.
func state(*actorsdk.Request) *actorsdk.Response {
	if busy {
		return actorsdk.Error(500, actorsdk.CodeInternal, "entered twice")
	}
	busy = true
	defer func() { busy = false }()
	served++
	time.Sleep(time.Millisecond)
	return actorsdk.JSON(200, actorsdk.M{"served": served})
}

func sleep(req *actorsdk.Request) *actorsdk.Response {
	ms, _ := strconv.Atoi(req.Query.Get("ms"))
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return actorsdk.Text(200, "slept")
}

// printFlood floods stdout with ?mb= MiB of 100-byte lines, then writes one
// line of ?line= MiB to stderr in a single write.
func printFlood(req *actorsdk.Request) *actorsdk.Response {
	mb, _ := strconv.Atoi(req.Query.Get("mb"))
	lineMB, _ := strconv.Atoi(req.Query.Get("line"))
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range mb << 20 / len(line) {
		_, _ = os.Stdout.Write(line)
	}
	long := make([]byte, lineMB<<20)
	for i := range long {
		long[i] = 'y'
	}
	_, _ = os.Stderr.Write(append(long, '\n'))
	return actorsdk.Text(200, "printed")
}

// recurse never stops recursing: the guest's stack, and the engine's
// native stack beneath it, grow until one of them is exhausted.
func recurse(depth int) int {
	var pad [8]int
	pad[depth%8] = depth
	return recurse(depth+1) + pad[(depth+1)%8]
}

func main() {}
