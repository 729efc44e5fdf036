package web

// hasToolbar reports whether the VM page offers any action at the top of
// its status: a primary button, a console, or an item of the menu.
func (v liveView) hasToolbar() bool {
	return v.CanAct && len(v.Actions) > 0 || v.Console || v.Lease.CanExtend || v.menuItems() > 0
}

// menuItems counts the secondary actions behind "More actions": extending
// a lease that is not about to end (one that is gets a button of its own),
// and marking the VM as a pet or as cattle.
func (v liveView) menuItems() int {
	n := 0
	if v.Lease.CanExtend && !v.Lease.Urgent {
		n++
	}
	if v.Cattle.CanPet {
		n++
	}
	return n
}

// menuOpen opens the menu when the page comes back with a refusal of one
// of its items, so that the control is beside the reason.
func (v liveView) menuOpen() bool {
	return v.Flash != nil && v.Flash.Error && (v.Flash.Near == "pet" || v.Flash.Near == "extend" && !v.Lease.Urgent)
}
