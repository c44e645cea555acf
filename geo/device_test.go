package geo

import (
	"strings"
	"testing"
)

func TestParseUserAgent(t *testing.T) {
	cases := []struct {
		ua                     string
		name, typ, browser, os string
	}{
		// Desktop
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Windows PC", Desktop, "Chrome", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Windows PC", Desktop, "Edge", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Windows PC", Desktop, "Firefox", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Windows PC", Desktop, "Opera", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.10.0.0 Safari/537.36", "Windows PC", Desktop, "Yandex Browser", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18", "Windows PC", Desktop, "Vivaldi", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045", "Windows PC", Desktop, "Edge", "Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko", "Windows PC", Desktop, "Internet Explorer", "Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Mac", Desktop, "Safari", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Mac", Desktop, "Chrome", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", "Mac", Desktop, "Firefox", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Mac", Desktop, "Edge", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Mac", Desktop, "Opera", "macOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Linux", Desktop, "Chrome", "Linux"},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Linux", Desktop, "Firefox", "Linux"},
		{"Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "Linux", Desktop, "Firefox", "Linux"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Ubuntu Chromium/130.0.0.0 Chrome/130.0.0.0 Safari/537.36", "Linux", Desktop, "Chromium", "Linux"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chromebook", Desktop, "Chrome", "ChromeOS"},
		// iPhone and iPad
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "iPhone", Mobile, "Safari", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "iPhone", Mobile, "Chrome", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15", "iPhone", Mobile, "Firefox", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15", "iPhone", Mobile, "Edge", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 OPiOS/5.5.0 Safari/604.1", "iPhone", Mobile, "Opera", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/490.0.0.0]", "iPhone", Mobile, "Facebook", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "iPhone", Mobile, "Safari", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/343.0.695551749 Mobile/15E148 Safari/604.1", "iPhone", Mobile, "Google App", "iOS"},
		{"Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "iPad", Tablet, "Safari", "iPadOS"},
		{"Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "iPad", Tablet, "Chrome", "iPadOS"},
		{"Mozilla/5.0 (iPod touch; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Mobile/15E148 Safari/604.1", "iPhone", Mobile, "Safari", "iOS"},
		// Android
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Android", Mobile, "Chrome", "Android"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Android", Mobile, "Samsung Internet", "Android"},
		{"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Android", Mobile, "Firefox", "Android"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", "Android", Mobile, "Edge", "Android"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0", "Android", Mobile, "Opera", "Android"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.81 Mobile Safari/537.36", "Android", Mobile, "Chrome", "Android"},
		{"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Android", Tablet, "Chrome", "Android"},
		{"Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0", "Android", Tablet, "Firefox", "Android"},
		{"Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.1.1 like Chrome/131.0.6778.39 Safari/537.36", "Android", Tablet, "Amazon Silk", "Android"},
		{"Mozilla/5.0 (Linux; U; Android 13; en-US; V2225 Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.7.0.1320 Mobile Safari/537.36", "Android", Mobile, "UC Browser", "Android"},
		{"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile DuckDuckGo/5 Safari/537.36", "Android", Mobile, "DuckDuckGo", "Android"},
		// Bots and tools
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Unknown Device", Bot, "Googlebot", "Unknown OS"},
		{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Unknown Device", Bot, "Googlebot", "Android"},
		{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "Unknown Device", Bot, "Bingbot", "Unknown OS"},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", "Unknown Device", Bot, "GPTBot", "Unknown OS"},
		{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "Unknown Device", Bot, "Facebook", "Unknown OS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "Unknown Device", Bot, "Headless Chrome", "Linux"},
		{"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "Unknown Device", Bot, "AhrefsBot", "Unknown OS"},
		{"curl/8.5.0", "Unknown Device", Unknown, "Unknown Browser", "Unknown OS"},
		{"python-requests/2.32.3", "Unknown Device", Unknown, "Unknown Browser", "Unknown OS"},
		{"", "Unknown Device", Unknown, "Unknown Browser", "Unknown OS"},
		{"\x00\x01garbage\xff", "Unknown Device", Unknown, "Unknown Browser", "Unknown OS"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d user agents", len(cases))
	}
	for _, tc := range cases {
		got := ParseUserAgent(tc.ua)
		want := Device{Name: tc.name, Type: tc.typ, Browser: tc.browser, OS: tc.os}
		if got != want {
			t.Errorf("%s\n got %+v\nwant %+v", tc.ua, got, want)
		}
	}
}

func TestParseUserAgentHuge(t *testing.T) {
	ua := "Mozilla/5.0 (Windows NT 10.0) " + strings.Repeat("Chrome/1 ", 12000)
	if d := ParseUserAgent(ua); d.Name != "Windows PC" || d.Browser != "Chrome" {
		t.Fatalf("huge UA: %+v", d)
	}
}

func BenchmarkParseUserAgent(b *testing.B) {
	ua := "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ParseUserAgent(ua)
	}
}

// The mssola/useragent fallback earns its place: these crawlers carry
// none of the marks markedBot looks for, and would otherwise count as
// people's devices (a new device to notify about, a session in the list).
func TestBotsOnlyTheFallbackCatches(t *testing.T) {
	for _, ua := range []string{
		"Apache-Nutch/1.19",
		"Feedfetcher-Google",
		"SiteSearch/1.0",
		"Wormly/1.0",
		"SemanticScholarBot",
		"Zeus 1.0 (http://www.zeus.com)",
		"Mozilla/5.0 (compatible; Yeti/1.1; http://naver.me/spd)",
	} {
		if bot, _ := markedBot(ua); bot {
			t.Errorf("%q: the marks catch it already; the case shows nothing", ua)
		}
		if d := ParseUserAgent(ua); d.Type != Bot {
			t.Errorf("%q: type %q, want %q", ua, d.Type, Bot)
		}
	}
}

// A crawler's own product name is shown only when it is a plain word:
// one that a mail reader would make a link of (a domain, a URL) or that
// is long is "Bot", since the notices print the browser.
func TestBotNameCannotCarryALink(t *testing.T) {
	for ua, want := range map[string]string{
		"Apache-Nutch/1.19":                     "Apache-Nutch",
		"evil.example-search/1.0":               "Bot",
		"Fetch-https://evil.example/login/1.0":  "Bot",
		"Visit-www.evil.example-fetch/2.0":      "Bot",
		strings.Repeat("a", 40) + "-search/1.0": "Bot",
	} {
		if d := ParseUserAgent(ua); d.Type != Bot || d.Browser != want {
			t.Errorf("%q: %+v, want the bot %q", ua, d, want)
		}
	}
}
