package main

import (
	"time"
	"unicode/utf8"

	"github.com/postbox-ipc/postbox"
)

// How recv -o json (and sub -o json's sender) print a message.

// messageJSON is recv's JSON line.
type messageJSON struct {
	ID           uint64    `json:"id"`
	Mailbox      string    `json:"mailbox"`
	Type         int64     `json:"type"`
	Priority     uint8     `json:"priority"`
	Redeliveries uint32    `json:"redeliveries"`
	Reason       string    `json:"dead_letter_reason,omitempty"`
	Sender       senderJS  `json:"sender"`
	SentAt       time.Time `json:"sent_at"`
	Body         *string   `json:"body,omitempty"`
	BodyBase64   []byte    `json:"body_base64,omitempty"`

	ReplyTo             string              `json:"reply_to,omitempty"`
	CorrelationID       *string             `json:"correlation_id,omitempty"`
	CorrelationIDBase64 []byte              `json:"correlation_id_base64,omitempty"`
	ContentType         string              `json:"content_type,omitempty"`
	Deadline            time.Time           `json:"deadline,omitzero"`
	Headers             map[string][]string `json:"headers,omitempty"`
	Urgent              bool                `json:"urgent,omitempty"` // cancel.go

	Fds         []int `json:"fds,omitempty"`          // the descriptors that came, numbered in recv (files.go)
	FdsWithheld bool  `json:"fds_withheld,omitempty"` // it carries descriptors this connection could not take
}

type senderJS struct {
	Kind     string `json:"kind"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	PID      int32  `json:"pid"`
	Endpoint uint64 `json:"endpoint"`
}

func toJSON(m *postbox.Message) messageJSON {
	j := messageJSON{ID: m.ID, Mailbox: m.Mailbox, Type: m.Type, Priority: m.Priority, Redeliveries: m.Redeliveries, Reason: m.Reason.String(),
		Sender: senderJS{m.Sender.Kind.String(), m.Sender.UID, m.Sender.GID, m.Sender.PID, m.Sender.Endpoint}, SentAt: m.SentAt,
		ReplyTo: m.ReplyTo(), ContentType: m.ContentType(), Deadline: m.Deadline(), Headers: m.Header(), Urgent: m.Urgent()}
	j.Fds, j.FdsWithheld = fdNumbers(m), m.FilesWithheld()
	if id := m.CorrelationID(); id != nil {
		if utf8.Valid(id) {
			s := string(id)
			j.CorrelationID = &s
		} else {
			j.CorrelationIDBase64 = id
		}
	}
	if utf8.Valid(m.Body) {
		s := string(m.Body)
		j.Body = &s
	} else {
		j.BodyBase64 = m.Body
	}
	return j
}
