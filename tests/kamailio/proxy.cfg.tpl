#!KAMAILIO
# A plain stateful proxy for the tests: the bridge's outbound proxy towards a region.
debug=1
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:@PROXY_PORT@
mpath="@MPATH@"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  # Our own Route entry (the bridge's outbound proxy URI) is consumed here.
  loose_route();
  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
  if (is_method("ACK") && !t_check_trans()) { forward(); exit; }
  if (is_method("INVITE") && !has_totag()) { record_route(); }
  if (!t_relay()) { sl_reply_error(); }
}
