package series

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// fromLine is mbox's message separator; git format-patch writes
// "From <40 hex> Mon Sep 17 00:00:00 2001".
var fromLine = regexp.MustCompile(`^From (\S+) `)

// commitRE recognises the commit in format-patch's separator.
var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// tagRE reads "[PATCH v3 2/6]", "[RFC PATCH 02/38]", "[PATCH] ...".
var tagRE = regexp.MustCompile(`^\s*(?:(?:Re|RE|Fwd):\s*)*\[([^\]]*)\]\s*`)

// partRE finds "N/M" in a tag; versionRE "vN".
var (
	partRE    = regexp.MustCompile(`(?:^|\s)0*(\d+)/0*(\d+)(?:\s|$)`)
	versionRE = regexp.MustCompile(`(?:^|\s)(v\d+)(?:\s|$)`)
)

// message is one mail of an mbox.
type message struct {
	commit string
	header mail.Header
	body   []byte
}

// splitMbox cuts an mbox into messages at "From " lines that start the
// file or follow an empty line (mboxrd quoting of such lines in bodies is
// ">From ", which this leaves alone).
func splitMbox(data []byte) ([]message, error) {
	var msgs []message
	var cur *bytes.Buffer
	var commit string
	prevEmpty := true
	flush := func() error {
		if cur == nil {
			return nil
		}
		m, err := mail.ReadMessage(bytes.NewReader(cur.Bytes()))
		if err != nil {
			return fmt.Errorf("%w: message %d: %v", ErrFormat, len(msgs)+1, err)
		}
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		msgs = append(msgs, message{commit: commit, header: m.Header, body: body})
		return nil
	}
	for _, line := range splitLines(data) {
		if prevEmpty {
			if m := fromLine.FindSubmatch(line); m != nil {
				if err := flush(); err != nil {
					return nil, err
				}
				if len(msgs) >= MaxPatches+1 { // a cover letter may come on top
					return nil, fmt.Errorf("%w: more than %d messages", ErrFormat, MaxPatches)
				}
				cur, commit = &bytes.Buffer{}, ""
				if commitRE.Match(m[1]) {
					commit = string(m[1])
				}
				prevEmpty = false
				continue
			}
		}
		if cur == nil {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			// Not an mbox but one mail (a .patch file from a mail client,
			// or format-patch output without its From line).
			cur = &bytes.Buffer{}
		}
		cur.Write(line)
		prevEmpty = len(bytes.TrimRight(line, "\r\n")) == 0
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// ParseMbox reads the patches of an mbox (b4 am's output, a single
// format-patch file, or several concatenated). A cover letter (0/N, or a
// message without a diff) is dropped but its tag feeds the version. When
// every patch carries an N/M number the patches are put in that order;
// numbers must then run 1..M without gaps.
func ParseMbox(data []byte) ([]Patch, error) {
	if len(data) > MaxFile*4 {
		return nil, fmt.Errorf("%w: mbox of %d bytes is larger than %d", ErrFormat, len(data), MaxFile*4)
	}
	msgs, err := splitMbox(data)
	if err != nil {
		return nil, err
	}
	type numbered struct {
		p      Patch
		n, tot int
	}
	var ps []numbered
	allNumbered := true
	for i, m := range msgs {
		body, err := decodeBody(m.header, m.body)
		if err != nil {
			return nil, fmt.Errorf("%w: message %d: %v", ErrFormat, i+1, err)
		}
		subject := decodeHeader(m.header.Get("Subject"))
		tag, subj := splitTag(subject)
		n, tot := partOf(tag)
		files, err := ParseDiff(body)
		if err != nil {
			return nil, fmt.Errorf("message %d (%q): %w", i+1, clip(subject), err)
		}
		if len(files) == 0 || (tot > 0 && n == 0) {
			continue // a cover letter or a reply
		}
		p := Patch{
			Name:      fmt.Sprintf("message %d", i+1),
			Subject:   subj,
			Tag:       tag,
			Author:    decodeHeader(m.header.Get("From")),
			Date:      m.header.Get("Date"),
			MessageID: strings.Trim(strings.TrimSpace(m.header.Get("Message-Id")), "<>"),
			Commit:    m.commit,
			Diff:      mailPatch(m.header, subject, body),
			Files:     files,
		}
		if tot == 0 {
			allNumbered = false
		}
		ps = append(ps, numbered{p, n, tot})
	}
	if allNumbered && len(ps) > 1 {
		slices.SortStableFunc(ps, func(a, b numbered) int { return a.n - b.n })
		for i, x := range ps {
			if x.n != i+1 || x.tot != ps[0].tot {
				return nil, fmt.Errorf("%w: patch numbers do not run 1..%d: found %d/%d at position %d (missing or duplicate patches?)", ErrFormat, ps[0].tot, x.n, x.tot, i+1)
			}
		}
		if len(ps) != ps[0].tot {
			return nil, fmt.Errorf("%w: the series says %d patches, the mbox holds %d", ErrFormat, ps[0].tot, len(ps))
		}
	}
	out := make([]Patch, len(ps))
	for i, x := range ps {
		out[i] = x.p
		out[i].Index = i + 1
	}
	return out, nil
}

// mailPatch is the text handed to patch(1): the subject and the decoded
// body (patch skips everything before the first diff header).
func mailPatch(h mail.Header, subject string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\nSubject: %s\n\n", decodeHeader(h.Get("From")), subject)
	b.Write(body)
	return b.Bytes()
}

func splitTag(subject string) (tag, rest string) {
	subject = strings.Join(strings.Fields(subject), " ")
	if m := tagRE.FindStringSubmatchIndex(subject); m != nil {
		return subject[m[2]:m[3]], strings.TrimSpace(subject[m[1]:])
	}
	return "", subject
}

func partOf(tag string) (n, total int) {
	m := partRE.FindStringSubmatch(tag)
	if m == nil {
		return 0, 0
	}
	n, _ = strconv.Atoi(m[1])
	total, _ = strconv.Atoi(m[2])
	if total == 0 || n > total || total > MaxPatches {
		return 0, 0
	}
	return n, total
}

func versionOf(tag string) string {
	if m := versionRE.FindStringSubmatch(tag); m != nil {
		return m[1]
	}
	return ""
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	return input, nil // subjects are ASCII or UTF-8 in practice; keep the bytes
}}

func decodeHeader(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	}
	return strings.Join(strings.Fields(s), " ")
}

// decodeBody undoes a Content-Transfer-Encoding; multipart mails are refused.
func decodeBody(h mail.Header, body []byte) ([]byte, error) {
	if ct := h.Get("Content-Type"); strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "multipart/") {
		return nil, fmt.Errorf("multipart mail (%s): save the patch as plain text (b4 am does)", clip(ct))
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		return io.ReadAll(io.LimitReader(quotedprintable.NewReader(bytes.NewReader(body)), MaxFile))
	case "base64":
		return io.ReadAll(io.LimitReader(base64.NewDecoder(base64.StdEncoding, &stripNewlines{r: bufio.NewReader(bytes.NewReader(body))}), MaxFile))
	}
	return body, nil
}

type stripNewlines struct{ r *bufio.Reader }

func (s *stripNewlines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := s.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c != '\n' && c != '\r' {
			p[n] = c
			n++
		}
	}
	return n, nil
}
