// Package topic is the deterministic core of postbox's publish/subscribe:
// subject syntax and matching, the index of subscriptions, the buffers and
// overflow policies of subscriptions, queue groups, content filters, and
// the permissions on subjects. It does no I/O, reads no clock and starts
// no goroutine; the broker drives it under its own lock and carries out
// the Effects it returns, as it does for package mailbox.
//
// # Subjects and patterns
//
// A subject is a string of tokens separated by dots: "orders.eu.created".
// A pattern is a subject whose tokens may also be wildcards, with the
// rules NATS users know:
//
//	"*" matches exactly one token:   "orders.*" matches "orders.eu", not "orders" nor "orders.eu.created"
//	">" matches one or more tokens,  "orders.>" matches "orders.eu" and "orders.eu.created", not "orders";
//	    only as the last token       ">" alone matches every subject
//
// Tokens are never empty (no leading, trailing or doubled dot), contain no
// whitespace or control characters, and a wildcard character is only ever
// a whole token ("ord*" is refused, in subjects and patterns alike).
// Subjects and patterns are valid UTF-8 of 1..MaxSubjectLen (255) bytes
// and 1..MaxTokens (32) tokens. ValidSubject and ValidPattern say why an
// input is refused (ErrInvalidSubject, ErrInvalidPattern); Match is the
// plain reference matcher; Intersects and Covers compare two patterns.
//
// # Why a hand-written trie
//
// A publication must find its subscriptions without a scan of all of
// them: with 10,000 subscriptions, the scan costs 10,000 comparisons per
// publication. The standard library has nothing for token-wise wildcard
// matching (path.Match and filepath.Match test one pattern at a time, and
// their "*" does not mean one token), and no well-kept small library does
// it either, so Sublist is written here. Its shape follows NATS's
// sublist, the structure behind the NATS server's subject routing: a trie
// with one level per token, a literal map, a "*" child and a ">" child per
// level, and a cache of recent results invalidated on every change. The
// code is this package's own. BenchmarkMatch compares it with the scan.
//
// # Subscriptions, buffers and policies
//
// Every subscription (Sub) has a buffer of Buffer events: the events
// accepted for it and not yet credited back. The engine hands events to
// the shell (EffDeliver) while fewer than Window are in flight; the shell
// writes them and calls AddCredit as they are written (or as the
// subscriber acknowledges them: the shell decides what frees room). The
// rest stay held in the engine, in order. An event's life:
//
//	publish --room--> held --window has room--> in flight (EffDeliver) --AddCredit--> gone
//	   |
//	   +--buffer full--> the subscription's Policy:
//	        Block       the publication waits (Publish returns done=false) until AddCredit
//	                    makes room (then EffPublished{Token}) or the publisher gives up (Withdraw)
//	        DropOldest  the oldest held event is dropped and the arrival held
//	                    (with nothing held, the arrival is the oldest and is dropped)
//	        DropNewest  the arrival is dropped
//	        Disconnect  EffDisconnect, and the subscription is removed
//
// Window defaults to Buffer (everything accepted is handed out at once),
// except under DropOldest, where it defaults to half the buffer so that
// there is something left to drop.
//
// # Gap notices
//
// A subscriber is never left to guess that it missed something: every
// EffDeliver carries Missed, the number of events dropped for it since the
// previous delivery, exactly at the place in the stream where they were
// dropped. When drops are the last thing that happened (nothing accepted
// after them), the notice goes alone, as an EffDeliver with a nil Pub, as
// soon as the window has room. A notice alone takes no room in the buffer
// and is not credited back (extra credit is ignored, so crediting it is
// harmless). Drops are also counted per subscription and per pattern
// (SubStat, Subjects).
//
// # Waiting publishers
//
// A publication is delivered independently to each subscription: those
// with room get it at once, drop-policy ones may drop it, and it waits
// only for the full Block subscriptions. It is therefore not all or
// nothing: Withdraw stops the deliveries still waiting, and the
// subscriptions already served keep their copy. Per subscription, waiting
// publications are placed in the order they were published.
//
// # Queue groups
//
// Subscriptions with the same Pattern and the same non-empty Queue form a
// queue group. The group gets each publication once: in the buffer of one
// member, chosen round-robin among the members whose filter passes it and
// that have room. If none has room, the next such member in turn decides
// by its policy: it drops or disconnects as it would alone, and under
// Block the publication waits for the group and goes to the first member
// (passing the filter) that gets room, including one that joins. A group
// counts once in Publish's matched count.
//
// # Filters
//
// A subscription's Filter passes a publication whose type lies in
// TypeMin..TypeMax (when HasType is set or a bound is not zero) and whose
// headers satisfy every HeaderCond: the key is present, or present with a
// given value. Filters run in the engine, so a filtered-out publication
// costs the subscriber nothing.
//
// # Permissions
//
// Claims gives subjects owners and file-like modes: a Claim on a pattern
// says who owns the subjects it matches. Publishing needs w on the subject,
// subscribing r; root (uid 0) may do anything, an unclaimed subject is
// open to all. A subject belongs to its most specific claim (more literal
// tokens, then fewer wildcards; see MoreSpecific). A wildcard subscription
// needs r on every claim it may reach (Allowed). Claims of different
// owners may not overlap, unless root makes them (ErrClaimed).
//
// # Concurrency
//
// Nothing in this package is safe for concurrent use; the owner of a
// Sublist, Engine or Claims serialises all calls to it, Match included.
package topic
