// Caller numbers in E.164 form, so the same subscriber gives the same string however the trunk
// wrote the number (national, `00` prefix, `+`, with visual separators). Pure.
//
// Used by re-contact flagging: a number that is withheld, anonymous or not a plausible
// subscriber number gives null, and null never matches anything.

/** Display values trunks use for a number that is not there. */
const NOT_A_NUMBER = /anonymous|withheld|unavailable|restricted|private|unknown/i;

/** Visual separators (RFC 3966): spaces (incl. no-break), dashes, dots, parentheses. */
const SEPARATORS = /[\s\u00a0\-.()]/g;

/**
 * `+` followed by 7–15 digits, the country code not starting with 0: the E.164 form.
 * Anything else gives null.
 */
function plausible(digits: string): string | null {
  return /^[1-9]\d{6,14}$/.test(digits) ? `+${digits}` : null;
}

/**
 * The caller number in E.164 form (`+4512345678`), or null when there is none to compare:
 * null/empty, withheld/anonymous/unavailable/restricted, letters or other characters, or a
 * number of implausible length (short codes such as 112 among them).
 *
 * - spaces, dashes, dots and parentheses are removed; a `tel:` prefix is accepted;
 * - `00…` (international prefix) becomes `+…`;
 * - `+…` is kept when it has 7–15 digits;
 * - a national number gets `defaultCountryCode`. For Denmark (45, a closed numbering plan
 *   without a trunk prefix) that is exactly 8 digits starting 2–9; for another country code a
 *   number with one leading `0` (trunk prefix) that is then stripped.
 */
export function toE164(number: string | null, defaultCountryCode = '45'): string | null {
  if (number === null) return null;
  if (NOT_A_NUMBER.test(number)) return null;
  let s = number.trim().replace(/^tel:/i, '').replace(SEPARATORS, '');
  if (s.length === 0) return null;
  if (s.startsWith('+')) return /^\+\d+$/.test(s) ? plausible(s.slice(1)) : null;
  if (!/^\d+$/.test(s)) return null;
  if (s.startsWith('00')) return plausible(s.slice(2));
  if (!/^[1-9]\d{0,2}$/.test(defaultCountryCode)) return null;
  if (defaultCountryCode === '45') return /^[2-9]\d{7}$/.test(s) ? `+45${s}` : null;
  if (!/^0[1-9]/.test(s)) return null;
  s = s.slice(1);
  return plausible(`${defaultCountryCode}${s}`);
}
