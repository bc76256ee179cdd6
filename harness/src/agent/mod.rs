//! The agent channel between the host and the harness inside the VM: what the two ends say
//! (`protocol`), the guest's end of the virtio-serial port (`guest_end`), and what the guest
//! does with each request (`handler`). The host's end is `vm::Vm`.

pub mod guest_end;
pub mod handler;
pub mod protocol;
