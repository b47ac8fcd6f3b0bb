package pretrain

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzRecord: metrics lines parse or fail cleanly; parsed records
// round-trip.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"kind":"train","step":3,"stage":"main","tokens":6144,"grad_norm":"NaN","loss":"Infinity","lr":0.001,"skipped":true}`))
	f.Add([]byte(`{"kind":"eval","step":10,"stage":"anneal","tokens":1,"eval_loss":2.5,"eval_ppl":12.18,"unigram":4}`))
	f.Add([]byte(`{"kind":"train","loss":"fast"}`))
	f.Add([]byte(`{"step":1.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var r2 Record
		if err := json.Unmarshal(b, &r2); err != nil {
			t.Fatalf("re-encoded record %s does not parse: %v", b, err)
		}
		b2, _ := r2.MarshalJSON()
		if !bytes.Equal(b, b2) {
			t.Fatalf("record does not round-trip: %s vs %s", b, b2)
		}
	})
}
