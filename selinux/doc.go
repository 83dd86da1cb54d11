// Package selinux holds Portcullis's SELinux policy modules, one per
// process: portcullis (the core, portcullis_t), portcullis_web (the front,
// portcullis_web_t), portcullis_vpn (the OpenVPN workers, portcullis_vpn_t)
// and portcullis_link (the link agent, portcullis_link_t, and its hook,
// portcullis_link_hook_t). Each is a .te, .if and .fc built with the
// reference policy's devel Makefile (`make selinux`).
//
// The package has no Go code: its tests build the modules, link them into a
// copy of the distribution's full policy store and assert with sesearch,
// rule by rule, what each domain must and must not be allowed. See
// docs/selinux.md.
package selinux
