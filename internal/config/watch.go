package config

import "time"

// Watch tunes how airlock finds what appears in the stores it watches
// (the export area): a poll every Every, and optionally sooner, when the
// store sends a bucket notification to /events/s3 on the HTTP listener.
type Watch struct {
	Every time.Duration
	// TokenEnv names the environment variable holding the bearer token a
	// notification must carry; "" accepts notifications without one
	// (versitygw sends none: keep the HTTP listener on loopback then).
	TokenEnv string
}

const defaultWatchEvery = 5 * time.Second

// parseWatch reads the watch section.
func parseWatch(c *checker, m map[string]field) Watch {
	w := Watch{Every: c.duration(m["every"], defaultWatchEvery, false)}
	if f := m["webhook_token_env"]; f.present() {
		if env, ok := c.str(f); ok {
			if err := checkEnvName(env); err != nil {
				c.errorf(valLine(f), "%s: %v", f.path, err)
			} else {
				w.TokenEnv = env
			}
		}
	}
	return w
}
