package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/supervisor"
	"github.com/election-manager/election-manager/internal/testutil"
)

// The elector command: a child runs only while its elector leads, and is dead
// before anyone else could take the Lease over. Timings are the tests' 6s/3s/1s, so
// the safety margin is 560ms, the grace period 2.44s, and a child must be dead by
// its elector's last renewal + 5.44s.

var testBudget = supervisor.Budget{LeaseDuration: leaseDuration, RenewDeadline: renewDeadline}

// slack absorbs a loaded 2-core machine in bounds that check liveness, never in
// those that check safety.
const slack = 500 * time.Millisecond

func TestElectorRunsOneChildAndHandsOverOnSIGTERM(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("work", external)
	electors := map[string]*elector{}
	for _, id := range []string{"e-1", "e-2", "e-3"} {
		electors[id] = c.startElector(kids, electorArgs{id: id, election: groupArgs("work"), child: []string{}})
	}
	first := kids.waitRun(10*time.Second, "a child", func(run) bool { return true })
	for id, e := range electors {
		if id != first.holder {
			e.WaitForOutput(t, `"holder":"`+first.holder+`"`, 10*time.Second) // it follows
		}
	}
	if living := kids.living(); len(living) != 1 || len(kids.runs()) != 1 {
		t.Fatalf("children %+v, want exactly one", kids.runs())
	}

	leader := electors[first.holder]
	if err := leader.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := leader.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("%s exited with %d after SIGTERM", leader.id, code)
	}
	next := kids.waitRun(10*time.Second, "the next child", func(r run) bool { return r.holder != first.holder })
	died := kids.waitDeath(first.pid, time.Second)
	if died >= next.start {
		t.Errorf("the next child started %s before the first died", time.Duration(died-next.start))
	}
	if next.epoch <= first.epoch {
		t.Errorf("epoch %d after %d: it must grow", next.epoch, first.epoch)
	}
	// A release: the next leader needs no leaseDuration.
	if gap := time.Duration(next.start - died); gap > 2*retryPeriod+slack {
		t.Errorf("the next child started %s after the first died, want within about a retry period", gap)
	}
	if living := kids.living(); len(living) != 1 {
		t.Errorf("%d children alive, want 1", len(living))
	}
}

func TestElectorCutOffLeaderKillsItsChildBeforeTakeover(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("work", external)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
	a := c.startElector(kids, electorArgs{id: "cut", viaProxy: true, election: groupArgs("work"), child: []string{}})
	first := kids.waitRun(10*time.Second, "cut's child", func(run) bool { return true })
	c.startElector(kids, electorArgs{id: "other", election: groupArgs("work"), child: []string{}}).
		WaitForOutput(t, `"holder":"cut"`, 10*time.Second)
	renewed := watchRenewals(t, lease)
	poll(t, 5*time.Second, "a renewal seen", func() bool { return !renewed.lastOf("cut").IsZero() })

	a.proxy.SetMode(testutil.Blackhole)
	next := kids.waitRun(leaseDuration+10*time.Second, "other's child", func(r run) bool { return r.holder == "other" })
	died := kids.waitDeath(first.pid, time.Second)
	last := renewed.lastOf("cut")
	if takeover := last.Add(leaseDuration); !kids.wall(died).Before(takeover) {
		t.Errorf("SAFETY: cut's child died %s after the earliest takeover (last renewal + leaseDuration)", kids.wall(died).Sub(takeover))
	}
	// It obeys SIGTERM, which comes when leadership ends: by the last renewal +
	// renewDeadline.
	if bound := last.Add(renewDeadline + slack); kids.wall(died).After(bound) {
		t.Errorf("cut's child died %s after its last renewal, want within renewDeadline", kids.wall(died).Sub(last))
	}
	if died >= next.start || next.epoch <= first.epoch {
		t.Errorf("other's child (epoch %d) started %s after cut's (epoch %d) died: want after, with a higher epoch",
			next.epoch, time.Duration(next.start-died), first.epoch)
	}
	if a.Exited() {
		t.Errorf("the cut-off elector exited; it should campaign again")
	}
}

func TestElectorKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	grace := testBudget.Grace()
	t.Run("leadership lost", func(t *testing.T) {
		c := newCluster(t)
		kids := newChildren(t)
		lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
		a := c.startElector(kids, electorArgs{id: "stubborn", viaProxy: true,
			election: lockArgs(c.namespace, "work"), child: []string{"-ignore-term"}})
		child := kids.waitRun(10*time.Second, "the child", func(run) bool { return true })
		renewed := watchRenewals(t, lease)
		poll(t, 5*time.Second, "a renewal seen", func() bool { return !renewed.lastOf("stubborn").IsZero() })

		a.proxy.SetMode(testutil.Blackhole)
		died := kids.waitDeath(child.pid, leaseDuration+10*time.Second)
		child = kids.runs()[0]
		if child.ignored == 0 {
			t.Fatalf("the child never got SIGTERM")
		}
		// SIGKILL at min(SIGTERM + grace, lastRenewal + leaseDuration - margin).
		last := renewed.lastOf("stubborn")
		if bound := last.Add(testBudget.Horizon()); kids.wall(died).After(bound.Add(slack)) {
			t.Errorf("killed %s after the bound, last renewal + %s", kids.wall(died).Sub(bound), testBudget.Horizon())
		}
		if takeover := last.Add(leaseDuration); !kids.wall(died).Before(takeover) {
			t.Errorf("SAFETY: the child died %s after the earliest takeover", kids.wall(died).Sub(takeover))
		}
		if waited := time.Duration(died - child.ignored); waited < grace-slack {
			t.Errorf("killed %s after SIGTERM, want the grace period %s", waited, grace)
		}
	})
	t.Run("elector stopped", func(t *testing.T) {
		c := newCluster(t)
		kids := newChildren(t)
		lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
		a := c.startElector(kids, electorArgs{id: "stubborn", election: lockArgs(c.namespace, "work"), child: []string{"-ignore-term"}})
		child := kids.waitRun(10*time.Second, "the child", func(run) bool { return true })
		if err := a.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := a.Wait(t, grace+10*time.Second); code != 0 {
			t.Errorf("exited with %d after SIGTERM", code)
		}
		died := kids.waitDeath(child.pid, time.Second)
		child = kids.runs()[0]
		if waited := time.Duration(died - child.ignored); waited < grace-slack || waited > grace+slack {
			t.Errorf("killed %s after SIGTERM, want the grace period %s", waited, grace)
		}
		// Released only once the child was dead: the elector says so in this order,
		// and the release's time agrees (the death is seen here a scheduling delay late).
		l := getLease(t, lease)
		releasedAt, err := time.Parse(time.RFC3339Nano, l.Annotations["coordination.electionmanager.dev/released-at"])
		if l.Spec.HolderIdentity != nil || err != nil {
			t.Fatalf("the Lease was not released: holder %v, annotations %v", l.Spec.HolderIdentity, l.Annotations)
		}
		out := a.Output()
		if exited, released := strings.Index(out, `"msg":"Child exited"`), strings.Index(out, `"msg":"Released lease"`); exited < 0 || released < exited {
			t.Errorf("the elector did not log the child's exit before the release")
		}
		if early := kids.wall(died).Sub(releasedAt); early > 50*time.Millisecond {
			t.Errorf("released %s before the child was seen dead", early)
		}
	})
}

func TestElectorKilledTakesItsChildAlong(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("work", external)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
	a := c.startElector(kids, electorArgs{id: "doomed", election: groupArgs("work"), child: []string{}})
	first := kids.waitRun(10*time.Second, "doomed's child", func(run) bool { return true })
	c.startElector(kids, electorArgs{id: "heir", election: groupArgs("work"), child: []string{}}).
		WaitForOutput(t, `"holder":"doomed"`, 10*time.Second)

	killed := monoNow()
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait(t, 10*time.Second)
	lastRenewal := getLease(t, lease).Spec.RenewTime.Time
	died := kids.waitDeath(first.pid, 5*time.Second)
	if took := time.Duration(died - killed); took > slack {
		t.Errorf("the child died %s after its elector was SIGKILLed", took)
	}
	next := kids.waitRun(leaseDuration+10*time.Second, "heir's child", func(r run) bool { return r.holder == "heir" })
	if after := kids.wall(next.start).Sub(lastRenewal); after < leaseDuration-100*time.Millisecond {
		t.Errorf("heir's child started %s after the last renewal, before leaseDuration", after)
	}
}

func TestElectorKilledTakesItsWholeTreeAlong(t *testing.T) {
	// Only the shell is the elector's child's child; one sleep is in its process
	// group and one called setsid. The kill's share of the safety margin bounds
	// how long any of them may outlive the elector.
	c := newCluster(t)
	kids := newChildren(t)
	c.group("work", external)
	tree, command := newProcessTree(t)
	a := c.startElector(kids, electorArgs{id: "doomed", election: groupArgs("work"), command: command})
	pids := tree.wait(10 * time.Second)

	killed := time.Now()
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "the whole tree dead", func() bool {
		for _, pid := range pids {
			if alive(t, pid) {
				return false
			}
		}
		return true
	})
	took := time.Since(killed)
	t.Logf("the last of the tree died within %s of the elector's SIGKILL", took)
	if took > supervisor.KillLatency {
		t.Errorf("the tree outlived its elector by %s, more than the %s a kill may take", took, supervisor.KillLatency)
	}
	a.Wait(t, 10*time.Second)
}

func TestElectorWithoutAGroupIsRecordedByTheManager(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.startManager("observer", false)
	c.group("recorded", external, func(g *v1alpha1.LeaderGroup) {
		g.Spec.Lease = &v1alpha1.LeaseReference{Name: "plain-lock"}
	})
	e := c.startElector(kids, electorArgs{http: true, election: lockArgs(c.namespace, "plain-lock"), child: []string{}})
	child := kids.waitRun(10*time.Second, "the child", func(run) bool { return true })

	resp, err := http.Get(e.http + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Identity, Holder string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if v.Identity == "" || v.Holder != v.Identity || child.holder != v.Identity {
		t.Fatalf("/leader %+v, child's ELECTION_HOLDER %q: want one identity", v, child.holder)
	}
	// Default identity: the hostname plus a random suffix.
	if i := strings.LastIndex(v.Identity, "-"); i < 1 || len(v.Identity)-i-1 != 5 {
		t.Errorf("identity %q: want hostname-xxxxx", v.Identity)
	}
	g := c.waitFor("recorded", 10*time.Second, "the elector recorded as holder", heldBy(v.Identity))
	if g.Status.Transitions != child.epoch || g.Status.Lease != c.namespace+"/plain-lock" {
		t.Errorf("status %s: want epoch %d on %s/plain-lock", statusString(g), child.epoch, c.namespace)
	}
}

func TestElectorWaitsForTheAPIServer(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	kubeconfig, proxy := proxiedKubeconfig(t)
	proxy.SetMode(testutil.Refuse)
	e := testutil.StartProcess(t, "waiting", kids.elector, "--kubeconfig", kubeconfig, "--id", "waiting",
		"--namespace", c.namespace, "--lock-name", "work", "--lease-duration=6s", "--renew-deadline=3s", "--retry-period=1s")
	e.WaitForOutput(t, `"msg":"Cannot reach the API server, retrying"`, 10*time.Second)
	proxy.SetMode(testutil.Pass)
	waitForLeaseHolder(t, types.NamespacedName{Namespace: c.namespace, Name: "work"}, "waiting", 20*time.Second)
}

func TestElectorRefusesNamingTheProblem(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("managed")
	c.group("tight", external, func(g *v1alpha1.LeaderGroup) {
		g.Spec.LeaseDuration = metav1.Duration{Duration: 3 * time.Second}
		g.Spec.RenewDeadline = metav1.Duration{Duration: 2500 * time.Millisecond}
		g.Spec.RetryPeriod = metav1.Duration{Duration: 400 * time.Millisecond}
	})
	c.group("open", external)
	nobody := impersonatingKubeconfig(t, "system:serviceaccount:"+c.namespace+":nobody")
	child := []string{"--", kids.child, "-log", kids.Log}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing group", []string{"--group", "nope"},
			[]string{"LeaderGroup " + c.namespace + "/nope not found", "source External"}},
		{"a group of source Manager", []string{"--group", "managed"},
			[]string{"group " + c.namespace + "/managed is of source Manager: its electors are the managers; use source External"}},
		{"a group's timings leave no room", append([]string{"--group", "tight"}, child...),
			[]string{"LeaderGroup " + c.namespace + "/tight: spec.leaseDuration (3s) - spec.renewDeadline (2.5s) - safety margin (530ms", "no time to stop"}},
		{"flag timings leave no room", append([]string{"--lock-name", "x", "--lease-duration=2s", "--renew-deadline=1.6s", "--retry-period=200ms"}, child...),
			[]string{"--lease-duration (2s) - --renew-deadline (1.6s) - safety margin (520ms, --safety-margin)", "no time to stop"}},
		{"grace period too long", append([]string{"--group", "open", "--grace-period=3s"}, child...),
			[]string{"--grace-period 3s: must be at most spec.leaseDuration (6s) - spec.renewDeadline (3s) - safety margin (560ms) = 2.44s"}},
		{"lock flags with a group", []string{"--group", "open", "--lease-duration=20s"},
			[]string{"--lease-duration cannot be used with --group"}},
		{"neither group nor lock", nil, []string{"--group or --lock-name is required"}},
		{"no RBAC for the group", []string{"--kubeconfig", nobody, "--group", "open"},
			[]string{"missing RBAC: cannot get leadergroups.coordination.electionmanager.dev"}},
		{"no RBAC for the Lease", []string{"--kubeconfig", nobody, "--lock-name", "x"},
			[]string{`missing RBAC: user "system:serviceaccount:` + c.namespace + `:nobody" cannot get, list, watch, create, update leases.coordination.k8s.io`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--kubeconfig", cp.Kubeconfig, "--namespace", c.namespace}, tc.args...)
			p := testutil.StartProcess(t, "elector", kids.elector, args...)
			if code := p.Wait(t, 30*time.Second); code == 0 {
				t.Errorf("exited 0, want an error")
			}
			t.Log(strings.TrimSpace(p.Output()))
			for _, w := range tc.want {
				if !strings.Contains(p.Output(), w) {
					t.Errorf("output does not say %q:\n%s", w, p.Output())
				}
			}
		})
	}
	if runs := kids.runs(); len(runs) != 0 {
		t.Errorf("a refused elector started a child: %+v", runs)
	}
}

func TestElectorFollowsItsChildsExit(t *testing.T) {
	t.Run("exits with its code and releases", func(t *testing.T) {
		c := newCluster(t)
		kids := newChildren(t)
		lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
		e := c.startElector(kids, electorArgs{id: "once", election: lockArgs(c.namespace, "work"),
			child: []string{"-exit-after=200ms", "-exit-code=7"}})
		if code := e.Wait(t, 20*time.Second); code != 7 {
			t.Errorf("exited with %d, want the child's 7", code)
		}
		if l := getLease(t, lease); l.Spec.HolderIdentity != nil {
			t.Errorf("the Lease is still held by %s", *l.Spec.HolderIdentity)
		}
	})
	t.Run("restarts it with --restart-child", func(t *testing.T) {
		c := newCluster(t)
		kids := newChildren(t)
		e := c.startElector(kids, electorArgs{id: "again", election: append(lockArgs(c.namespace, "work"), "--restart-child"),
			child: []string{"-exit-after=200ms", "-exit-code=7"}})
		poll(t, 20*time.Second, "three children", func() bool { return len(kids.runs()) >= 3 })
		runs := kids.runs()
		if runs[0].epoch != runs[2].epoch {
			t.Errorf("epochs %d and %d: a restart within one term keeps its epoch", runs[0].epoch, runs[2].epoch)
		}
		if e.Exited() {
			t.Errorf("the elector exited")
		}
	})
}

// A group deleted under its electors: a follower cannot read the epochs the group
// recorded, so it does not campaign, and says so once; when the group is back it
// campaigns, above every epoch the Lease had.
func TestElectorOfADeletedGroupSaysWhyItDoesNotCampaign(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("work", external)
	e1 := c.startElector(kids, electorArgs{id: "e-1", election: groupArgs("work"), child: []string{}})
	lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
	waitForLeaseHolder(t, lease, "e-1", 10*time.Second)
	e2 := c.startElector(kids, electorArgs{id: "e-2", election: groupArgs("work"), child: []string{}})
	e2.WaitForOutput(t, `"holder":"e-1"`, 10*time.Second)
	first := leaserecord.Epoch(getLease(t, lease))

	if out, err := runKubectl(t, cp.Kubeconfig, "", "delete", "leadergroup", "work", "-n", c.namespace); err != nil {
		t.Fatalf("kubectl delete leadergroup: %v\n%s", err, out)
	}
	if err := e1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e1.Wait(t, 10*time.Second)
	e2.WaitForOutput(t, `"msg":"Not campaigning: cannot read the LeaderGroup`, 2*retryPeriod+10*time.Second)
	if !strings.Contains(e2.Output(), `"reason":"NotFound"`) {
		t.Errorf("e-2 does not say the group is not found")
	}
	if h := leaserecord.Holder(getLease(t, lease)); h != "" {
		t.Fatalf("%s holds the Lease of a deleted group", h)
	}

	c.group("work", external)
	e2.WaitForOutput(t, `"msg":"The LeaderGroup can be read again: campaigning"`, 2*retryPeriod+10*time.Second)
	waitForLeaseHolder(t, lease, "e-2", 10*time.Second)
	if epoch := leaserecord.Epoch(getLease(t, lease)); epoch <= first {
		t.Errorf("e-2 leads at epoch %d, not above e-1's %d", epoch, first)
	}
	if n := strings.Count(e2.Output(), `"msg":"Not campaigning: cannot read the LeaderGroup`); n != 1 {
		t.Errorf("e-2 said %d times that it cannot read the group, want once", n)
	}
}
