package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/pkg/task"
)

// chromium returns Debian's chromium, installing it when it is missing
// (as make test's tools target does): the browser test never skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Log("chromium is missing; installing it with apt-get")
	cmd := exec.Command("sh", "-c", "apt-get update && apt-get install -y chromium")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium is not installed and apt-get could not install it: %v\n%s", err, out)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("apt-get installed chromium but it is not on PATH")
	}
	return p
}

// browser starts headless chromium with a fresh profile and returns a tab
// context; it is closed when the test ends.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	// Start the browser now, under a wide deadline for a busy machine.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// inTab runs steps in the tab under a wide deadline.
func inTab(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// evalJS evaluates expr in the tab.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls expr in the page until it is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
}

// screenshot saves the page to $DROVER_SCREENSHOTS/name.png when that
// directory is set (make screenshots; the images in docs/ come from it).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DROVER_SCREENSHOTS")
	if dir == "" {
		return
	}
	inTab(t, ctx, "settle", chromedp.Sleep(300*time.Millisecond))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboard is acceptance 1 of issue 17, in headless chromium: with
// 1,000 tasks in mixed states the overview's counts equal the API's;
// filtering by failed lists exactly the failed tasks (every page); the
// cancel button cancels a queued task and its row updates without a
// reload; a task cancelled elsewhere updates in the list by itself.
func TestDashboard(t *testing.T) {
	b := setupDev(t, func(e *devEnv) { e.Runner.Concurrency, e.Runner.Queues = 4, "default,images,reports,later" })
	// 600 succeed, 250 fail, 5 keep running, 145 wait (a 10m delay), of
	// which 95 are then cancelled: 1,000 tasks.
	var specs []map[string]any
	for i := range 850 {
		if i%17 < 5 { // 250 of 850
			specs = append(specs, map[string]any{"function": "fail", "max_attempts": 1, "args": map[string]any{"message": fmt.Sprintf("bad input %d", i)}})
		} else {
			specs = append(specs, map[string]any{"function": "echo", "queue": []string{"default", "images", "reports"}[i%3], "args": i})
		}
	}
	if n := countFn(specs, "echo"); n != 600 {
		t.Fatalf("test setup: %d echo tasks, want 600", n)
	}
	for range 5 {
		specs = append(specs, map[string]any{"function": "sleep", "timeout": "10m", "args": map[string]any{"ms": 600000}})
	}
	var ids []string
	for i := 0; i < len(specs); i += 300 {
		for _, st := range b.submitBatch(t, specs[i:min(i+300, len(specs))]) {
			ids = append(ids, st.ID)
		}
	}
	var delayed []map[string]any
	for range 145 {
		delayed = append(delayed, map[string]any{"function": "echo", "queue": "later", "delay": "10m"})
	}
	var queued []string
	for _, st := range b.submitBatch(t, delayed) {
		queued = append(queued, st.ID)
	}
	for _, id := range queued[:95] {
		if code, raw := b.do(t, "DELETE", "/v1/tasks/"+id, "", nil, nil); code != http.StatusOK {
			t.Fatalf("cancel %s: %d %s", id, code, raw)
		}
	}
	queued = queued[95:]
	b.awaitTerminal(t, ids[:850], 3*time.Minute)
	// The five sleeps show as running once their started events are in.
	deadline := time.Now().Add(time.Minute)
	for len(b.listAll(t, "&state=running")) != 5 {
		if time.Now().After(deadline) {
			t.Fatal("the 5 sleep tasks never all showed as running")
		}
		time.Sleep(100 * time.Millisecond)
	}
	apiCounts := map[task.State]int{}
	var failedIDs []string
	for _, s := range task.States {
		list := b.listAll(t, "&state="+string(s))
		apiCounts[s] = len(list)
		if s == task.Failed {
			for _, st := range list {
				failedIDs = append(failedIDs, st.ID)
			}
		}
	}
	want := map[task.State]int{task.Succeeded: 600, task.Failed: 250, task.Running: 5, task.Queued: 50, task.Cancelled: 95}
	for _, s := range task.States {
		if apiCounts[s] != want[s] {
			t.Fatalf("API lists %d %s tasks, want %d", apiCounts[s], s, want[s])
		}
	}

	ctx := browser(t, 1280, 900)

	// Overview: each state's card shows the API's count.
	inTab(t, ctx, "open overview", chromedp.Navigate(b.url+"/"), chromedp.WaitVisible(chromedp.CSS("#count-failed")))
	for _, s := range task.States {
		inTab(t, ctx, "read "+string(s), waitJS(fmt.Sprintf(`document.querySelector("#count-%s .n") !== null`, s)))
		got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector("#count-%s .n").textContent`, s))
		if n, err := strconv.Atoi(got); err != nil || n != apiCounts[s] {
			t.Errorf("overview shows %q %s, the API lists %d", got, s, apiCounts[s])
		}
	}
	if total := evalJS[string](t, ctx, `document.querySelector("#count-total .n").textContent`); total != "1000" {
		t.Errorf("overview total %q, want 1000", total)
	}
	screenshot(t, ctx, "overview")

	// Filter by failed through the form, then page through every page:
	// exactly the API's failed tasks, each shown failed.
	inTab(t, ctx, "filter failed", chromedp.Navigate(b.url+"/#/tasks"), chromedp.WaitVisible(chromedp.CSS("#task-rows tr")),
		chromedp.SetValue(chromedp.CSS("#filter-state"), "failed"),
		chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
		waitJS(`location.hash === "#/tasks?state=failed" && document.querySelectorAll("#task-rows tr").length > 0 && [...document.querySelectorAll("#task-rows tr")].every(r => r.dataset.state === "failed")`))
	screenshot(t, ctx, "tasks-failed")
	var shown []string
	for page := 0; ; page++ {
		rows := evalJS[[]string](t, ctx, `[...document.querySelectorAll("#task-rows tr")].map(r => r.dataset.id)`)
		states := evalJS[[]string](t, ctx, `[...document.querySelectorAll("#task-rows tr")].map(r => r.dataset.state)`)
		for i, st := range states {
			if st != "failed" {
				t.Errorf("filtered list shows %s as %s", rows[i], st)
			}
		}
		shown = append(shown, rows...)
		if !evalJS[bool](t, ctx, `document.querySelector("#next-page") !== null`) {
			break
		}
		if page > 20 {
			t.Fatal("more than 20 pages of failed tasks")
		}
		first := rows[0]
		inTab(t, ctx, "next page", chromedp.Click(chromedp.CSS("#next-page")),
			waitJS(fmt.Sprintf(`(r => r && r.dataset.id !== %q)(document.querySelector("#task-rows tr"))`, first)))
	}
	slices.Sort(shown)
	slices.Sort(failedIDs)
	if !slices.Equal(shown, failedIDs) {
		t.Errorf("filtering by failed listed %d tasks, the API has %d failed; lists differ", len(shown), len(failedIDs))
	}

	// The cancel button: the newest tasks are the queued ones. A marker
	// on window proves no reload happened.
	target := queued[len(queued)-1]
	inTab(t, ctx, "open tasks", chromedp.Navigate(b.url+"/#/tasks"),
		waitJS(fmt.Sprintf(`document.querySelector('tr[data-id=%q] button.cancel') !== null`, target)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.noReload = true`)(ctx, tg)
			return err
		}))
	screenshot(t, ctx, "tasks")
	inTab(t, ctx, "click cancel", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q] button.cancel`, target))),
		waitJS(fmt.Sprintf(`(r => r && r.dataset.state === "cancelled")(document.querySelector('tr[data-id=%q]'))`, target)))
	if st := b.get(t, target, 0); st.State != task.Cancelled {
		t.Errorf("after the cancel button the API says %s is %s", target, st.State)
	}
	// Live: a task cancelled through the API updates in the list without
	// a reload (the page polls).
	other := queued[len(queued)-2]
	if code, raw := b.do(t, "DELETE", "/v1/tasks/"+other, "", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel %s: %d %s", other, code, raw)
	}
	inTab(t, ctx, "live update", waitJS(fmt.Sprintf(`(r => r && r.dataset.state === "cancelled")(document.querySelector('tr[data-id=%q]'))`, other)))
	if !evalJS[bool](t, ctx, `window.noReload === true`) {
		t.Error("the page reloaded")
	}

	// Task detail, runners: rendered from the API.
	inTab(t, ctx, "detail", chromedp.Navigate(b.url+"/#/task/"+failedIDs[0]), waitJS(`document.querySelector("ol.timeline li.s-failed") !== null`))
	screenshot(t, ctx, "task-detail")
	inTab(t, ctx, "runners", chromedp.Navigate(b.url+"/#/runners"), waitJS(`document.querySelectorAll("#runner-table tbody tr").length === 2`))
	screenshot(t, ctx, "runners")
	inTab(t, ctx, "dead letters", chromedp.Navigate(b.url+"/#/deadletters"), waitJS(`document.querySelector("#no-deadletters") !== null`))
	screenshot(t, ctx, "dead-letters")

	// Phone-sized (390×844, mobile, touch): the overview still shows
	// every state's count.
	phone := browser(t, 390, 844)
	inTab(t, phone, "phone overview", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch), chromedp.Navigate(b.url+"/"), waitJS(`document.querySelector("#count-cancelled .n") !== null`))
	screenshot(t, phone, "phone-overview")
	inTab(t, phone, "phone tasks", chromedp.Navigate(b.url+"/#/tasks?state=failed"), waitJS(`document.querySelectorAll("#task-rows tr").length > 0`))
	screenshot(t, phone, "phone-tasks")
}

func countFn(specs []map[string]any, fn string) int {
	n := 0
	for _, s := range specs {
		if s["function"] == fn {
			n++
		}
	}
	return n
}

// TestDashboardLogin: behind API keys the dashboard asks for a key, keeps
// it in sessionStorage (not in the URL) and then shows the API's counts; a
// wrong key is refused.
func TestDashboardLogin(t *testing.T) {
	const key = "dashboard-test-key-0123456789"
	b := setupDev(t, func(e *devEnv) { e.Dispatch.APIKeys = []string{key} })
	ctx := browser(t, 1280, 900)
	inTab(t, ctx, "open", chromedp.Navigate(b.url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-key-wrong-key-wrong"),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		waitJS(`!document.querySelector("#login").hidden && !document.querySelector("#login-error").hidden`))
	inTab(t, ctx, "sign in", chromedp.SendKeys(chromedp.CSS("#token"), key),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		waitJS(`document.querySelector("#count-total .n") !== null`))
	if got := evalJS[string](t, ctx, `document.querySelector("#count-total .n").textContent`); got != "0" {
		t.Errorf("total %q after sign-in, want 0", got)
	}
	if href := evalJS[string](t, ctx, `location.href`); strings.Contains(href, key) {
		t.Errorf("the key is in the URL: %s", href)
	}
	if got := evalJS[string](t, ctx, `sessionStorage.getItem("drover-api-key")`); got != key {
		t.Errorf("sessionStorage holds %q", got)
	}
	if got := evalJS[string](t, ctx, `String(localStorage.length)`); got != "0" {
		t.Errorf("localStorage holds %s items; the key must stay in the session", got)
	}
}
