package zone

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a design file.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one thing wrong with a design: where, which field, what, and how to fix it.
type Problem struct {
	Pos   Pos
	Field string
	Msg   string
	Fix   string
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Fix != "" {
		b.WriteString(" (")
		b.WriteString(p.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// Problems is every error found in a design. A design with any problem is rejected whole.
type Problems []*Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return ps
}

// problems collects problems while a design is read and checked.
type problems struct{ list Problems }

func (ps *problems) add(pos Pos, field, fix, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...), Fix: fix})
}
