package mailbox

import "testing"

// Stall: the broker takes a consumer's credit away while its connection
// has too much unread output; messages then stay queued, and AddCredit of
// what Stall returned resumes the consumer where it was.
func TestStalledConsumerGetsNothingUntilItsCreditIsGivenBack(t *testing.T) {
	m := unbounded()
	c := consumer("c", 1, 0, 10)
	c.AutoAck = true
	if err := m.Receive(c, true); err != nil {
		t.Fatal(err)
	}
	mustSend(t, m, newMsg("a", 1, 0))
	n := m.Stall(c)
	if n != 9 {
		t.Fatalf("Stall took %d credits, want the 9 left", n)
	}
	checkInvariants(t, m)
	mustSend(t, m, newMsg("b", 1, 0))
	wantEffects(t, m) // queued, not delivered
	wantQueue(t, m, "b")
	if again := m.Stall(c); again != 0 {
		t.Fatalf("a second Stall took %d credits", again)
	}
	m.AddCredit(c, n)
	if effs := m.Effects(); len(effs) != 1 || effs[0].Kind != EffDeliver || string(effs[0].Msg.Body) != "b" {
		t.Fatalf("AddCredit after Stall: effects %s, want b delivered", effStrings(effs))
	}
	checkInvariants(t, m)
	wantQueue(t, m)
	if c.Credit != 8 {
		t.Fatalf("credit %d after resuming and one delivery, want 8", c.Credit)
	}
}
