package topic_test

import (
	"fmt"

	"github.com/postbox-ipc/postbox/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("orders.*", "orders.eu"))
	fmt.Println(topic.Match("orders.*", "orders.eu.created"))
	fmt.Println(topic.Match("orders.>", "orders.eu.created"))
	fmt.Println(topic.Match("orders.>", "orders"))
	// Output:
	// true
	// false
	// true
	// false
}

func ExampleSublist() {
	s := topic.NewSublist[string]()
	s.Insert("orders.>", "audit")
	s.Insert("orders.*.created", "mailer")
	s.Insert("stock.*", "warehouse")
	fmt.Println(s.Match("orders.eu.created"))
	fmt.Println(s.Match("orders.eu"))
	fmt.Println(s.Match("stock"))
	// Output:
	// [mailer audit]
	// [audit]
	// []
}

// A subscriber with room for one event, under DropNewest: the two
// publications that find it full are dropped, and it is told so.
func ExampleEngine() {
	e := topic.NewEngine()
	e.Subscribe(topic.Sub{ID: 1, Pattern: "ticks.>", Buffer: 1, Policy: topic.DropNewest})
	for _, p := range []string{"t1", "t2", "t3"} {
		e.Publish(topic.Pub{Subject: "ticks.eur", Payload: p}, 0)
	}
	show := func() {
		for _, x := range e.Effects() {
			if x.Pub == nil {
				fmt.Printf("sub %d: gap notice, missed %d\n", x.Sub, x.Missed)
			} else {
				fmt.Printf("sub %d: %v (missed %d before it)\n", x.Sub, x.Pub.Payload, x.Missed)
			}
		}
	}
	show()
	e.AddCredit(1, 1) // the shell wrote t1
	show()
	e.Publish(topic.Pub{Subject: "ticks.eur", Payload: "t4"}, 0)
	show()
	// Output:
	// sub 1: t1 (missed 0 before it)
	// sub 1: gap notice, missed 2
	// sub 1: t4 (missed 0 before it)
}

func ExampleClaims() {
	var c topic.Claims
	c.Claim("alice.>", 1000, 100, 0o640) // alice: rw, her group: r
	fmt.Println(c.Allowed("alice.notes", 2000, []uint32{100}, topic.PermRead))
	fmt.Println(c.Allowed("alice.notes", 2000, []uint32{100}, topic.PermWrite))
	fmt.Println(c.Allowed(">", 2000, nil, topic.PermRead)) // would read alice's subjects
	fmt.Println(c.Allowed("bob.notes", 2000, nil, topic.PermWrite))
	fmt.Println(c.Claim("alice.public", 2000, 200, 0o666))
	// Output:
	// true
	// false
	// false
	// true
	// topic: subject claimed by another owner: "alice.public" overlaps "alice.>" of uid 1000
}

// A Block subscription makes a publisher wait; the shell parks it under
// its token until EffPublished (or gives up with Withdraw).
func ExampleEngine_Publish_block() {
	e := topic.NewEngine()
	e.Subscribe(topic.Sub{ID: 7, Pattern: "jobs.>", Buffer: 1, Policy: topic.Block})
	_, done := e.Publish(topic.Pub{Subject: "jobs.a", Payload: "first"}, 1)
	fmt.Println("first done:", done)
	_, done = e.Publish(topic.Pub{Subject: "jobs.a", Payload: "second"}, 2)
	fmt.Println("second done:", done)
	e.Effects()       // the delivery of "first"
	e.AddCredit(7, 1) // the shell wrote "first"
	for _, x := range e.Effects() {
		switch x.Kind {
		case topic.EffDeliver:
			fmt.Println("deliver", x.Pub.Payload, "to", x.Sub)
		case topic.EffPublished:
			fmt.Println("publisher", x.Token, "may go on")
		}
	}
	// Output:
	// first done: true
	// second done: false
	// deliver second to 7
	// publisher 2 may go on
}
