package scaling

import (
	"strings"
	"testing"
)

func TestReadPoints(t *testing.T) {
	good := "# a comment\n{\"flops\": 1e18, \"params\": 1e8, \"tokens\": 1.6e9, \"loss\": 3.1}\n\n{\"flops\": 2e18, \"params\": 2e8, \"tokens\": 1.6e9, \"loss\": 3.0, \"budget\": 2e18}\n"
	pts, err := readPoints(strings.NewReader(good), "p.jsonl")
	if err != nil || len(pts) != 2 || pts[1].Budget != 2e18 || pts[0].Params != 1e8 {
		t.Fatalf("%+v %v", pts, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"flops": 1, "params": 1, "tokens": 1}`, "p.jsonl:1: missing loss"},
		{`{"flops": 1, "params": -1, "tokens": 1, "loss": 2}`, "p.jsonl:1: params must be a positive"},
		{"\n{\"flops\": 1, \"params\": 1, \"tokens\": 1, \"loss\": 2, \"lost\": 1}", "p.jsonl:2: json: unknown field \"lost\""},
		{`{"flops": "1", "params": 1, "tokens": 1, "loss": 2}`, "p.jsonl:1:"},
		{`{"flops": 1, "params": 1, "tokens": 1, "loss": 2} {}`, "more than one JSON value"},
		{`[1, 2]`, "p.jsonl:1:"},
		{strings.Repeat(" ", maxLine+1), "longer than"},
	} {
		_, err := readPoints(strings.NewReader(c.in), "p.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzReadPoints(f *testing.F) {
	f.Add([]byte("{\"flops\": 1e18, \"params\": 1e8, \"tokens\": 1.6e9, \"loss\": 3.1}\n"))
	f.Add([]byte("# x\n{\"flops\": 1, \"params\": 1, \"tokens\": 1, \"loss\": 1, \"budget\": 1, \"run\": \"r\"}\n{}"))
	f.Add([]byte("{\"flops\": 1e999}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, err := readPoints(strings.NewReader(string(data)), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, p := range pts {
			if !(p.FLOPs > 0 && p.Params > 0 && p.Tokens > 0 && p.Loss > 0) || p.Budget < 0 {
				t.Fatalf("accepted a bad point %+v", p)
			}
		}
	})
}

func TestReadItems(t *testing.T) {
	items, err := readItems(strings.NewReader(`{"question": "2+2?", "choices": ["3", "4"], "answer": 1}`+"\n"), "i.jsonl")
	if err != nil || len(items) != 1 || items[0].Answer != 1 {
		t.Fatalf("%+v %v", items, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"question": "q", "choices": ["a"], "answer": 0}`, "i.jsonl:1: choices needs at least 2"},
		{`{"question": "q", "choices": ["a", "b"], "answer": 2}`, "answer 2 is not an index"},
		{`{"question": "q", "choices": ["a", "b"]}`, "answer (the index of the correct choice) is missing"},
		{`{"choices": ["a", "b"], "answer": 0}`, "question is missing"},
		{`{"question": "q", "choices": ["a", ""], "answer": 0}`, "choices[1] is empty"},
		{``, "no items"},
	} {
		_, err := readItems(strings.NewReader(c.in), "i.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzReadItems(f *testing.F) {
	f.Add([]byte(`{"question": "2+2?", "choices": ["3", "4"], "answer": 1}`))
	f.Add([]byte("{\"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"answer\": -1}\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := readItems(strings.NewReader(string(data)), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, it := range items {
			if it.Answer < 0 || it.Answer >= len(it.Choices) || len(it.Choices) < 2 {
				t.Fatalf("accepted a bad item %+v", it)
			}
		}
	})
}

func TestSelectBudgets(t *testing.T) {
	pts := []Point{{Budget: 5e11}, {Budget: 1e12}, {Budget: 1e12}, {Budget: 2e12}}
	got, err := SelectBudgets(pts, "5e11, 1.0e12")
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := SelectBudgets(pts, "4e12"); err == nil || !strings.Contains(err.Error(), "no finished runs of budget 4e+12") {
		t.Fatal(err)
	}
	if _, err := SelectBudgets(pts, "x"); err == nil {
		t.Fatal("accepted x")
	}
}
