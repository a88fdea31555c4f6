// Command bare-fiber is the reference server of the HTTP benchmarks: a Fiber
// app with default settings that answers GET / with "hello" and nothing else.
// It stops on SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()

	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("hello") })

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = app.Shutdown()
	}()
	if err := app.Listen(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "bare-fiber:", err)
		os.Exit(1)
	}
}
