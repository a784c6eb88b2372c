package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

// TestDashboardGroups: the Groups page lists a finished group (with its
// progress) and a chain's first step; the group's page shows the API's
// counts and its members in index order, and links to its callback,
// whose page links back; a chain step's page links its previous and next
// steps; a failed task's page shows its arguments; the runners page shows
// each runner's traits, in flight and exec.
func TestDashboardGroups(t *testing.T) {
	b := setupDev(t, nil)
	c := client.New(b.url)
	ctx := context.Background()
	spec := task.GroupSpec{Then: &task.Spec{Function: "echo", Args: json.RawMessage(`{"callback":true}`)}}
	for i := range 30 {
		spec.Tasks = append(spec.Tasks, task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	g, err := c.SubmitGroup(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Submit(ctx, task.Spec{Function: "mul", Args: json.RawMessage(`[2,3]`),
		Then: &task.Spec{Function: "safediv", Args: json.RawMessage(`[3]`)}})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.Submit(ctx, task.Spec{Function: "fail", MaxAttempts: 1, Args: json.RawMessage(`{"message":"bad input 42"}`)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if g, err = c.WaitGroup(wctx, g.ID, client.WaitGroupOptions{Interval: 200 * time.Millisecond}); err != nil || g.State != task.GroupSucceeded {
		t.Fatalf("group: %+v, %v", g, err)
	}
	if st, err := c.Wait(wctx, first.Next, client.WaitOptions{PollWait: 5 * time.Second}); err != nil || st.State != task.Succeeded {
		t.Fatalf("chain's last step: %+v, %v", st, err)
	}
	// The callback is succeeded once the group is; wait for it as well.
	if st, err := c.Wait(wctx, g.Callback, client.WaitOptions{PollWait: 5 * time.Second}); err != nil || st.State != task.Succeeded {
		t.Fatalf("callback: %+v, %v", st, err)
	}

	if st, err := c.Wait(wctx, bad.ID, client.WaitOptions{PollWait: 5 * time.Second}); err != nil || st.State != task.Failed {
		t.Fatalf("failing task: %+v, %v", st, err)
	}

	bc := browser(t, 1280, 900)
	inTab(t, bc, "groups", chromedp.Navigate(b.url+"/#/groups"),
		waitJS(fmt.Sprintf(`(r => r && r.dataset.state === "succeeded")(document.querySelector('#group-table tr[data-id=%q]'))`, g.ID)),
		waitJS(fmt.Sprintf(`document.querySelector('#chain-table tr[data-id=%q]') !== null`, first.ID)))
	if got := evalJS[string](t, bc, fmt.Sprintf(`document.querySelector('#group-table tr[data-id=%q] .progress').textContent.trim()`, g.ID)); got != "30/30" {
		t.Errorf("group progress %q, want 30/30", got)
	}
	screenshot(t, bc, "groups")

	inTab(t, bc, "group detail", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#group-table tr[data-id=%q] a`, g.ID))),
		waitJS(`document.querySelectorAll("#member-rows tr").length === 30`))
	for _, s := range task.States {
		got := evalJS[string](t, bc, fmt.Sprintf(`document.querySelector("#group-count-%s .n").textContent`, s))
		if n, err := strconv.Atoi(got); err != nil || n != g.Counts[s] {
			t.Errorf("group page shows %q %s, the API %d", got, s, g.Counts[s])
		}
	}
	members := evalJS[[]string](t, bc, `[...document.querySelectorAll("#member-rows tr")].map(r => r.dataset.id)`)
	page, err := c.Group(ctx, g.ID, client.GroupOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range page.Members {
		if i >= len(members) || members[i] != m.ID {
			t.Fatalf("member %d shown as %v, the API has %s", i, members, m.ID)
		}
	}
	screenshot(t, bc, "group-detail")
	inTab(t, bc, "callback", chromedp.Click(chromedp.CSS("#group-callback")),
		waitJS(fmt.Sprintf(`(a => a && a.textContent === %q)(document.querySelector("#callback-of"))`, g.ID)))

	inTab(t, bc, "chain step", chromedp.Navigate(b.url+"/#/task/"+first.ID),
		waitJS(fmt.Sprintf(`(a => a && a.textContent === %q)(document.querySelector("#chain-next"))`, first.Next)),
		chromedp.Click(chromedp.CSS("#chain-next")),
		waitJS(fmt.Sprintf(`(a => a && a.textContent === %q)(document.querySelector("#chain-previous"))`, first.ID)))
	screenshot(t, bc, "chain-step")

	// Task detail: a failed task's arguments (kept with its message), a
	// succeeded echo's are not kept; logs only for exec.
	inTab(t, bc, "failed detail", chromedp.Navigate(b.url+"/#/task/"+bad.ID),
		waitJS(`(p => p && p.textContent.includes('"message": "bad input 42"'))(document.querySelector("#args"))`),
		waitJS(`document.querySelector("#logs-none") !== null`))
	screenshot(t, bc, "task-detail-args")
	inTab(t, bc, "succeeded detail", chromedp.Navigate(b.url+"/#/task/"+first.ID),
		waitJS(`(p => p && p.textContent.includes("not kept"))(document.querySelector("#args-none"))`))

	inTab(t, bc, "runners", chromedp.Navigate(b.url+"/#/runners"),
		waitJS(`document.querySelectorAll("#runner-table tbody tr").length === 2 && document.querySelectorAll("#runner-table td.traits").length === 2 && document.querySelectorAll("#runner-table td.in-flight .meter").length === 2`))
}
