package langid

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/abadojack/whatlanggo"

	"github.com/herdml/herd/internal/testenv"
)

const corpora = "../../../shared/testdata/corpora"

// multilingual holds a few sentences per language and script (written for
// this test) to plant among English text.
var multilingual = []string{
	"Le conseil municipal a décidé de rénover la bibliothèque et d'ouvrir une salle pour les enfants.",
	"Die Stadtverwaltung hat beschlossen, die Bibliothek zu renovieren und einen Raum für Kinder einzurichten.",
	"El ayuntamiento decidió renovar la biblioteca y abrir una sala para los niños del barrio.",
	"Il consiglio comunale ha deciso di rinnovare la biblioteca e di aprire una sala per i bambini.",
	"A câmara municipal decidiu renovar a biblioteca e abrir uma sala para as crianças da cidade.",
	"De gemeenteraad heeft besloten de bibliotheek te renoveren en een ruimte voor kinderen te openen.",
	"Rada miasta postanowiła wyremontować bibliotekę i otworzyć salę dla dzieci z okolicy.",
	"Kommunfullmäktige har beslutat att renovera biblioteket och öppna ett rum för barnen.",
	"Kaupunginvaltuusto päätti kunnostaa kirjaston ja avata lapsille oman huoneen.",
	"Belediye meclisi kütüphaneyi yenilemeye ve çocuklar için bir oda açmaya karar verdi.",
	"Городской совет решил отремонтировать библиотеку и открыть комнату для детей.",
	"Міська рада вирішила відремонтувати бібліотеку та відкрити кімнату для дітей.",
	"Градският съвет реши да ремонтира библиотеката и да отвори стая за децата.",
	"قرر المجلس البلدي تجديد المكتبة وافتتاح غرفة خاصة للأطفال في الحي.",
	"شورای شهر تصمیم گرفت کتابخانه را بازسازی کند و اتاقی برای کودکان باز کند.",
	"नगर परिषद ने पुस्तकालय की मरम्मत करने और बच्चों के लिए एक कमरा खोलने का फैसला किया।",
	"מועצת העיר החליטה לשפץ את הספרייה ולפתוח חדר לילדים בשכונה.",
	"市议会决定翻修图书馆，并为附近的孩子们开设一个房间。",
	"市議会は図書館を改修し、子どもたちのための部屋を開くことを決めました。",
	"시의회는 도서관을 보수하고 아이들을 위한 방을 열기로 결정했습니다.",
	"Το δημοτικό συμβούλιο αποφάσισε να ανακαινίσει τη βιβλιοθήκη και να ανοίξει αίθουσα για παιδιά.",
	"สภาเมืองตัดสินใจปรับปรุงห้องสมุดและเปิดห้องสำหรับเด็ก",
	"ქალაქის საბჭომ გადაწყვიტა ბიბლიოთეკის განახლება და ბავშვებისთვის ოთახის გახსნა.",
	"நகர சபை நூலகத்தை புதுப்பித்து குழந்தைகளுக்கான அறையை திறக்க முடிவு செய்தது.",
	"ከተማው ምክር ቤት ቤተ መጻሕፍቱን ለማደስ እና ለልጆች ክፍል ለመክፈት ወሰነ።",
	"Mestna občina je sklenila prenoviti knjižnico in odpreti sobo za otroke.",
	"Városi tanács úgy döntött, hogy felújítja a könyvtárat és szobát nyit a gyerekeknek.",
	"Hội đồng thành phố quyết định sửa chữa thư viện và mở một phòng cho trẻ em.",
}

// samples returns the texts both detectors are run on: 1 KiB and shorter
// windows of the reference corpora, and English text with planted
// sentences of other languages and scripts.
func samples(t *testing.T) []string {
	t.Helper()
	var out []string
	var english []string
	if _, err := os.Stat(corpora); err != nil {
		t.Logf("reference corpora not present at %s: only the multilingual samples run", corpora)
	} else {
		files, _ := filepath.Glob(filepath.Join(corpora, "*.txt"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			// ~120 windows per file, of 1 KiB, 200 and 40 bytes.
			step := max(len(s)/120, 1024)
			for at := 0; at+1024 <= len(s); at += step {
				for _, n := range []int{1024, 200, 40} {
					out = append(out, cut(s[at:], n))
				}
				english = append(english, cut(s[at:], 300))
			}
		}
	}
	if len(english) == 0 {
		english = []string{"The council met on Tuesday and agreed to repair the old library before winter."}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range multilingual {
		out = append(out, m, m+" "+m, strings.ToUpper(m))
	}
	for range 1500 {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			if rng.IntN(2) == 0 {
				b.WriteString(english[rng.IntN(len(english))])
			} else {
				b.WriteString(multilingual[rng.IntN(len(multilingual))])
			}
			b.WriteString(" ")
			if rng.IntN(5) == 0 {
				b.WriteString("12, 345 -- (#) ")
			}
		}
		out = append(out, cut(b.String(), 1024))
	}
	return out
}

// cut returns at most n bytes of s, ending on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// TestAgreesWithWhatlanggo checks that the fast detector returns the same
// language and confidence as whatlanggo.Detect, except where the two best
// languages tie (whatlanggo then answers by map iteration order).
func TestAgreesWithWhatlanggo(t *testing.T) {
	d := theDetector()
	texts := samples(t)
	ties, bad := 0, 0
	langs := map[string]int{}
	for _, text := range texts {
		info := whatlanggo.Detect(text)
		lang, conf, tie := d.detect(text)
		langs[code(lang)]++
		if tie {
			ties++
			continue
		}
		if lang != info.Lang || math.Abs(conf-info.Confidence) > 1e-9 {
			bad++
			if bad <= 10 {
				t.Errorf("%q: fast %s %.6f, whatlanggo %s %.6f", cut(text, 80), code(lang), conf, code(info.Lang), info.Confidence)
			}
		}
	}
	t.Logf("%d samples, %d ties skipped, %d disagreements; languages %v", len(texts), ties, bad, langs)
	if len(langs) < 20 {
		t.Errorf("samples cover only %d languages", len(langs))
	}
	if ties > len(texts)/50 {
		t.Errorf("%d of %d samples tie", ties, len(texts))
	}
}

func BenchmarkDetect(b *testing.B) {
	texts := []string{}
	testenv.Testdata(b, corpora)
	raw, err := os.ReadFile(filepath.Join(corpora, "jargon.txt"))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	for at := 0; at+1024 <= len(s) && len(texts) < 500; at += 4096 {
		texts = append(texts, cut(s[at:], 1024))
	}
	var total int64
	for _, t := range texts {
		total += int64(len(t))
	}
	for _, c := range []struct {
		name string
		fn   func(string)
	}{
		{"fast", func(t string) { Detect(t, 0) }},
		{"whatlanggo", func(t string) { whatlanggo.Detect(t) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				for _, t := range texts {
					c.fn(t)
				}
			}
		})
	}
}
