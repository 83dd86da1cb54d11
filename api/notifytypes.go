package api

import "time"

// Notification states: what a verified notification (or an admin override)
// has each surface do. See docs/notifications.md.
const (
	NoticeOK       = "ok"
	NoticeDisabled = "disabled"
)

// NotificationStates are the three surfaces' states.
type NotificationStates struct {
	// WWW disabled: the front answers every request with 503 and the
	// message.
	WWW string `json:"www" validate:"oneof=ok disabled"`
	// Web disabled: the core closes the front's listeners.
	Web string `json:"web" validate:"oneof=ok disabled"`
	// VPN disabled: every OpenVPN worker stops and none starts.
	VPN string `json:"vpn" validate:"oneof=ok disabled"`
}

// NotificationOverride is an admin's override of the notification.
type NotificationOverride struct {
	States  NotificationStates `json:"states"`
	Message string             `json:"message,omitempty" validate:"max=1024"`
}

// NotificationOverrideRecord is the override in force: who set it, when.
type NotificationOverrideRecord struct {
	States  NotificationStates `json:"states"`
	Message string             `json:"message,omitempty"`
	By      string             `json:"by"`
	At      time.Time          `json:"at"`
}

// NotificationNotice is the last verified notification.
type NotificationNotice struct {
	States  NotificationStates `json:"states"`
	Message string             `json:"message,omitempty"`
	Issued  time.Time          `json:"issued"`
	Expires time.Time          `json:"expires"`
}

// NotificationStatus is the notification state the gateway runs under.
type NotificationStatus struct {
	// Polling is true when the core polls a notification server (URL).
	Polling bool   `json:"polling"`
	URL     string `json:"url,omitempty"`
	// Effective is in force; Source says where it comes from: "override",
	// "notice" (the last verified notification) or "default" (all ok).
	Effective NotificationStates          `json:"effective"`
	Message   string                      `json:"message,omitempty"`
	Source    string                      `json:"source"`
	Notice    *NotificationNotice         `json:"notice,omitempty"`
	Override  *NotificationOverrideRecord `json:"override,omitempty"`
	// LastPoll is the last poll's time, LastAccepted the last time a
	// verified notification was accepted, LastError the last poll's
	// failure or refusal ("" after a poll that worked).
	LastPoll     *time.Time `json:"last_poll,omitempty"`
	LastAccepted *time.Time `json:"last_accepted,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	// ApplyError, when set, is why the state in force has not taken
	// effect yet (the web ports could not listen again); the core retries.
	ApplyError string `json:"apply_error,omitempty"`
}

// ControlNotificationPath is the notification's state on the core's
// control socket (GET); under it, "/poll" (POST: poll now) and "/override"
// (PUT an override, DELETE it). `portcullis notify status|poll|override|
// clear-override` use them: they work while the web surface is down.
const ControlNotificationPath = "/control/notification"
