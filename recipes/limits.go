package recipes

import (
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// Limits on recipe text, checked before the YAML parser sees it: the
// parser's time and memory grow with the square of the nesting depth
// (64 KiB of "[[[…" took 1.7 GB and 20 s), and a hand-written recipe
// needs neither megabytes of text nor deep nesting.
const (
	// maxRecipeBytes bounds the size of a recipe file or document.
	maxRecipeBytes = 1 << 20
	// maxOverrideBytes bounds the value of one key=value override; larger
	// settings belong in a recipe file.
	maxOverrideBytes = 16 << 10
	// maxDepth bounds how deeply lists and mappings nest, counting every
	// block (indented) and flow ([…], {…}) collection on the way from the
	// top of the document, the top-level mapping included.
	maxDepth = 64
)

// readRecipeFile reads a recipe file of at most maxRecipeBytes, without
// reading more than one byte past the limit of a larger one.
func readRecipeFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecipeBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecipeBytes {
		return nil, fmt.Errorf("%s: the recipe is larger than the limit of %d bytes", path, maxRecipeBytes)
	}
	return data, nil
}

// checkSize and checkDepth guard the YAML parser; see the limits above.
func checkSize(data []byte, limit int) error {
	if len(data) > limit {
		return fmt.Errorf("%d bytes, beyond the limit of %d bytes", len(data), limit)
	}
	return nil
}

// checkDepth reports, as "[line:column] …", the first place where data
// nests lists and mappings deeper than limit. It is a linear pre-scan that
// knows just enough YAML to count nesting: flow brackets and braces,
// block indentation and "- " / "? " entries that open a collection on the
// same line; brackets inside quoted strings, comments, block scalars
// (| and >) and multi-line plain scalars are text. It may count a level
// more than the parser in unusual layouts, and counts a sequence written
// at its parent key's indentation ("key:\n- item") as no level, so it
// never sees fewer than half the levels there are.
func checkDepth(data []byte, limit int) error {
	s := depthScan{limit: limit}
	for line := 1; len(data) > 0; line++ {
		end := 0
		for end < len(data) && data[end] != '\n' {
			end++
		}
		if err := s.line(data[:end], line); err != nil {
			return err
		}
		if end < len(data) {
			end++
		}
		data = data[end:]
	}
	return nil
}

// depthScan is checkDepth's state between lines.
type depthScan struct {
	limit int
	block []int // columns of the open block collections, innermost last
	flow  int   // open flow collections
	quote byte  // the open quoted scalar's delimiter, or 0
	// flowNodeStart: at the end of the last line, inside a flow
	// collection, a node could begin (after "[", "," or ": ").
	flowNodeStart bool
	// Lines indented deeper than blockScalar belong to a block scalar (| or
	// >), those deeper than plainCont continue a multi-line plain scalar.
	blockScalar, plainCont     int
	inBlockScalar, inPlainCont bool
}

func (s *depthScan) tooDeep(text []byte, line, pos int) error {
	return fmt.Errorf("[%d:%d] lists and mappings nest deeper than the limit of %d levels; flatten the recipe",
		line, utf8.RuneCount(text[:pos])+1, s.limit)
}

// push opens a block collection at column col.
func (s *depthScan) push(col int, text []byte, line int) error {
	s.block = append(s.block, col)
	if len(s.block)+s.flow > s.limit {
		return s.tooDeep(text, line, col)
	}
	return nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// blankAt reports whether text[i] is a blank or the end of the line.
func blankAt(text []byte, i int) bool { return i >= len(text) || isBlank(text[i]) }

func isFlowIndicator(c byte) bool { return c == ',' || c == '[' || c == ']' || c == '{' || c == '}' }

// line scans one line of the document.
func (s *depthScan) line(text []byte, line int) error {
	indent := 0
	for indent < len(text) && text[indent] == ' ' {
		indent++
	}
	i := 0
	if s.quote == 0 && s.flow == 0 {
		rest := indent
		for rest < len(text) && isBlank(text[rest]) {
			rest++
		}
		if rest == len(text) || text[rest] == '#' {
			return nil // blank or comment-only: ends nothing
		}
		if s.inBlockScalar {
			if indent > s.blockScalar {
				return nil
			}
			s.inBlockScalar = false
		}
		if s.inPlainCont {
			if indent > s.plainCont {
				return nil
			}
			s.inPlainCont = false
		}
		if indent == 0 && (text[0] == '%' || (len(text) >= 3 && (string(text[:3]) == "---" || string(text[:3]) == "...") && blankAt(text, 3))) {
			s.block = s.block[:0] // a directive or a document marker
			if text[0] == '%' {
				return nil
			}
			i = 3
		} else {
			for len(s.block) > 0 && s.block[len(s.block)-1] > indent {
				s.block = s.block[:len(s.block)-1]
			}
			if len(s.block) == 0 || s.block[len(s.block)-1] < indent {
				if err := s.push(indent, text, line); err != nil {
					return err
				}
			}
			i = indent
		}
	}
	nodeStart := s.quote == 0 && (s.flow == 0 || s.flowNodeStart) // a node (scalar or collection) may begin at i
	afterEntry := false                                           // a "- " or "? " on this line opened a nested node
	pending := -1                                                 // column of a node after "- " that becomes a mapping if ": " follows
	plain := false                                                // inside a plain scalar
	justClosed := false                                           // right after a quoted scalar or a flow collection (for JSON-style "a":b)
	for i < len(text) {
		c := text[i]
		if s.quote != 0 {
			switch {
			case s.quote == '"' && c == '\\':
				i += 2
				continue
			case c == s.quote && s.quote == '\'' && i+1 < len(text) && text[i+1] == '\'':
				i += 2
				continue
			case c == s.quote:
				s.quote, justClosed = 0, true
			}
			i++
			continue
		}
		if isBlank(c) {
			i++
			continue
		}
		if c == '#' && (i == 0 || isBlank(text[i-1])) {
			plain = false
			break // a comment runs to the end of the line
		}
		if s.flow > 0 {
			switch {
			case c == '[' || c == '{':
				s.flow++
				if len(s.block)+s.flow > s.limit {
					return s.tooDeep(text, line, i)
				}
				nodeStart, plain, justClosed = true, false, false
			case c == ']' || c == '}':
				s.flow--
				nodeStart, plain, justClosed = false, false, true
			case c == ',':
				nodeStart, plain, justClosed = true, false, false
			case c == ':' && (justClosed || blankAt(text, i+1) || isFlowIndicator(text[i+1])):
				nodeStart, plain, justClosed = true, false, false
			case nodeStart && (c == '"' || c == '\''):
				s.quote, nodeStart = c, false
			case nodeStart && (c == '&' || c == '!'):
				for i < len(text) && !isBlank(text[i]) && !isFlowIndicator(text[i]) {
					i++
				}
				continue
			case nodeStart && c == '?' && blankAt(text, i+1):
			default:
				nodeStart, plain, justClosed = false, true, false
			}
			i++
			continue
		}
		// Block context.
		if !nodeStart {
			if c == ':' && blankAt(text, i+1) {
				if pending >= 0 {
					if err := s.push(pending, text, line); err != nil {
						return err
					}
					pending = -1
				}
				nodeStart, plain, justClosed = true, false, false
			}
			i++
			continue
		}
		switch {
		case (c == '-' || c == '?') && blankAt(text, i+1):
			if afterEntry {
				if err := s.push(i, text, line); err != nil {
					return err
				}
			}
			afterEntry = true
			i++
			continue
		case c == '&' || c == '!':
			for i < len(text) && !isBlank(text[i]) {
				i++
			}
			continue
		case c == '[' || c == '{':
			s.flow++
			if len(s.block)+s.flow > s.limit {
				return s.tooDeep(text, line, i)
			}
			afterEntry, nodeStart = false, true
			i++
			// The rest of the line, and the lines up to the closing
			// bracket, are flow context.
			continue
		case c == '|' || c == '>':
			s.blockScalar, s.inBlockScalar = s.innermost(), true
			return nil
		case c == '"' || c == '\'':
			s.quote = c
		default:
			plain = true
		}
		if afterEntry {
			pending = i
		}
		afterEntry, nodeStart = false, false
		i++
	}
	s.flowNodeStart = nodeStart
	if plain && s.flow == 0 && s.quote == 0 {
		s.plainCont, s.inPlainCont = s.innermost(), true
	}
	return nil
}

// innermost is the column of the innermost open block collection, -1 at
// the top of a document.
func (s *depthScan) innermost() int {
	if len(s.block) == 0 {
		return -1
	}
	return s.block[len(s.block)-1]
}
