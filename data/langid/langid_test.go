package langid

import "testing"

func TestDetect(t *testing.T) {
	cases := []struct{ text, lang string }{
		{"The quick brown fox jumps over the lazy dog while the farmer watches from the porch.", "en"},
		{"Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.", "fr"},
		{"Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zuschaut.", "de"},
		{"El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.", "es"},
		{"Быстрая коричневая лиса прыгает через ленивую собаку, пока фермер смотрит.", "ru"},
	}
	for _, c := range cases {
		lang, score := Detect(c.text, 4096)
		if lang != c.lang || score <= 0 || score > 1 {
			t.Errorf("Detect(%.30q) = %q %.2f, want %q", c.text, lang, score, c.lang)
		}
	}
	cfg := Default()
	for _, c := range []struct {
		lang  string
		score float64
		want  string
	}{{"en", 0.9, ""}, {"fr", 0.9, "language"}, {"en", 0.1, "low_score"}} {
		if got := cfg.Check(c.lang, c.score); got != c.want {
			t.Errorf("Check(%s, %v) = %q, want %q", c.lang, c.score, got, c.want)
		}
	}
}
