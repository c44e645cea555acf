// Package geo tells where and on what a session lives: the device,
// browser and OS from a user agent, and the country, city and coordinates
// of an IP from a GeoIP2 or GeoLite2 City database.
package geo

import (
	"strings"

	"github.com/mssola/useragent"
)

// Device is what a user agent says about the client, with the names the
// gateway forwards (X-Auth-Device, X-Auth-Device-Type, X-Auth-Browser,
// X-Auth-OS).
type Device struct {
	Name    string // iPhone, iPad, Android, Mac, Windows PC, Linux, Chromebook, Unknown Device
	Type    string // mobile, tablet, desktop, bot, unknown
	Browser string // Chrome, Safari, Firefox, Edge, Opera, …, Unknown Browser
	OS      string // iOS, iPadOS, macOS, Windows, Android, Linux, ChromeOS, …, Unknown OS
}

// Device types.
const (
	Mobile  = "mobile"
	Tablet  = "tablet"
	Desktop = "desktop"
	Bot     = "bot"
	Unknown = "unknown"
)

// ParseUserAgent classifies a user agent. It runs once per sign-in (the
// result is stored with the session), never on the per-request hot path.
//
// The rules fix what naive parsers get wrong: Edge is Edge (its UA also
// says Chrome), Chrome and Firefox on iOS (CriOS, FxiOS) are Chrome and
// Firefox (not Safari), an Android UA without "Mobile" is a tablet, and
// crawlers and headless browsers are bots.
func ParseUserAgent(ua string) Device {
	d := Device{Name: "Unknown Device", Type: Unknown, Browser: "Unknown Browser", OS: "Unknown OS"}
	if strings.TrimSpace(ua) == "" {
		return d
	}
	if bot, name := detectBot(ua); bot {
		d.Type, d.Browser = Bot, name
		d.OS = osOnly(ua, d.OS)
		return d
	}
	d.Name, d.Type, d.OS = platform(ua)
	d.Browser = browser(ua)
	return d
}

var botMarks = []struct{ mark, name string }{
	{"Googlebot", "Googlebot"}, {"bingbot", "Bingbot"}, {"Slurp", "Yahoo! Slurp"},
	{"DuckDuckBot", "DuckDuckBot"}, {"Baiduspider", "Baiduspider"}, {"YandexBot", "YandexBot"},
	{"facebookexternalhit", "Facebook"}, {"Twitterbot", "Twitterbot"}, {"LinkedInBot", "LinkedInBot"},
	{"Applebot", "Applebot"}, {"AhrefsBot", "AhrefsBot"}, {"SemrushBot", "SemrushBot"},
	{"GPTBot", "GPTBot"}, {"ClaudeBot", "ClaudeBot"}, {"HeadlessChrome", "Headless Chrome"},
	{"PhantomJS", "PhantomJS"},
}

func detectBot(ua string) (bool, string) {
	if bot, name := markedBot(ua); bot {
		return true, name
	}
	// mssola/useragent reads the UA's structure where the marks above see
	// none: a single product without Mozilla whose name says search,
	// fetch, worm or nutch (Apache-Nutch/1.19, Feedfetcher-Google), or a
	// plain http:// site in the comment (Yeti's "http://naver.me/spd").
	// TestBotsOnlyTheFallbackCatches lists what it catches.
	var p useragent.UserAgent
	p.Parse(ua)
	if p.Bot() {
		name, _ := p.Browser()
		if !plainName(name) {
			name = "Bot"
		}
		return true, name
	}
	return false, ""
}

// plainName is a product name fit to show in a security notice: the
// client wrote it, so only a short word or two (letters, digits, - and _)
// that no mail reader makes a link of ("evil.example-search" is not one).
func plainName(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != ' ' {
			return false
		}
	}
	return true
}

// markedBot finds the marks crawlers and headless browsers sign with.
func markedBot(ua string) (bool, string) {
	for _, b := range botMarks {
		if strings.Contains(ua, b.mark) {
			return true, b.name
		}
	}
	lower := strings.ToLower(ua)
	for _, m := range []string{"bot/", "bot;", "crawler", "spider", "+http"} {
		if strings.Contains(lower, m) {
			return true, "Bot"
		}
	}
	return false, ""
}

// platform returns device name, type and OS.
func platform(ua string) (name, typ, os string) {
	switch {
	case strings.Contains(ua, "iPad"):
		return "iPad", Tablet, "iPadOS"
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPod"):
		return "iPhone", Mobile, "iOS"
	case strings.Contains(ua, "Windows Phone"):
		return "Windows Phone", Mobile, "Windows Phone"
	case strings.Contains(ua, "Android"):
		// Android phones say "Mobile"; tablets do not (Chrome's rule),
		// and some say "Tablet" outright.
		if strings.Contains(ua, "Mobile") && !strings.Contains(ua, "Tablet") {
			return "Android", Mobile, "Android"
		}
		return "Android", Tablet, "Android"
	case strings.Contains(ua, "CrOS"):
		return "Chromebook", Desktop, "ChromeOS"
	case strings.Contains(ua, "Windows NT"), strings.Contains(ua, "Win64"), strings.Contains(ua, "Windows"):
		return "Windows PC", Desktop, "Windows"
	case strings.Contains(ua, "Macintosh"), strings.Contains(ua, "Mac OS X"):
		return "Mac", Desktop, "macOS"
	case strings.Contains(ua, "Linux"), strings.Contains(ua, "X11"), strings.Contains(ua, "Ubuntu"), strings.Contains(ua, "Fedora"):
		return "Linux", Desktop, "Linux"
	}
	return "Unknown Device", Unknown, "Unknown OS"
}

// osOnly names the OS of a bot's UA where it says one.
func osOnly(ua, fallback string) string {
	if _, _, os := platform(ua); os != "Unknown OS" {
		return os
	}
	return fallback
}

// browserMarks are checked in order: the first match wins, so the
// specific brands come before the engines they are built on.
var browserMarks = []struct{ mark, name string }{
	{"EdgiOS/", "Edge"}, {"EdgA/", "Edge"}, {"Edg/", "Edge"}, {"Edge/", "Edge"},
	{"OPiOS/", "Opera"}, {"OPR/", "Opera"}, {"OPT/", "Opera"}, {"Opera", "Opera"},
	{"SamsungBrowser/", "Samsung Internet"}, {"YaBrowser/", "Yandex Browser"},
	{"Vivaldi/", "Vivaldi"}, {"Brave", "Brave"}, {"DuckDuckGo/", "DuckDuckGo"},
	{"UCBrowser/", "UC Browser"}, {"Silk/", "Amazon Silk"}, {"FBAN/", "Facebook"},
	{"Instagram", "Instagram"}, {"GSA/", "Google App"},
	{"FxiOS/", "Firefox"}, {"Firefox/", "Firefox"},
	{"CriOS/", "Chrome"}, {"Chromium/", "Chromium"}, {"Chrome/", "Chrome"},
	{"MSIE ", "Internet Explorer"}, {"Trident/", "Internet Explorer"},
}

func browser(ua string) string {
	for _, b := range browserMarks {
		if strings.Contains(ua, b.mark) {
			return b.name
		}
	}
	// Safari says "Version/x Safari/y"; iOS web views say neither, and
	// are Safari's engine in another app.
	if strings.Contains(ua, "Safari/") && strings.Contains(ua, "Version/") {
		return "Safari"
	}
	if strings.Contains(ua, "AppleWebKit/") && (strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad")) {
		return "Safari"
	}
	var p useragent.UserAgent
	p.Parse(ua)
	if name, _ := p.Browser(); name != "" && strings.Contains(ua, "Mozilla/") {
		switch name {
		case "Safari", "Chrome", "Firefox", "Opera", "Edge", "Internet Explorer":
			return name
		}
	}
	return "Unknown Browser"
}
