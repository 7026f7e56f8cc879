#!KAMAILIO
# Minimal SIP edge for the tests: a stateful proxy that record-routes 112 INVITEs to the bridge.
# (The production edge with dispatcher probing is config/kamailio/amk-edge.cfg.)
debug=1
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:@EDGE_PORT@
mpath="@MPATH@"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (has_totag()) {
    if (loose_route()) { t_relay(); exit; }
    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    sl_send_reply("404", "Not here");
    exit;
  }
  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
  t_check_trans();
  if (is_method("INVITE")) { record_route(); }
  $du = "sip:127.0.0.1:@BRIDGE_PORT@";
  if (!t_relay()) { sl_reply_error(); }
}
