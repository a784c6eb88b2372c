// Package dashboard is the web dashboard dispatch serves at /: plain
// HTML, CSS and JavaScript embedded in the binary (nothing is fetched
// from elsewhere at run time), talking to the same HTTP API as the
// client and the CLI. Its pages: overview (counts by state, function and
// queue; throughput and latency of the last hour; runners online), tasks
// (filtered, paged, live) with each task's detail and its cancel and
// retry buttons, runners, and dead letters with redrive. Behind API keys
// it shows a login form and keeps the key in the tab's sessionStorage,
// never in a URL.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard: the page at / and its assets under /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
			return
		}
		files.ServeHTTP(w, r)
	})
}
