const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const number = new Intl.NumberFormat();

export function formatDate(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date);
}

export function formatNumber(value: unknown, digits = 0): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (Number.isNaN(n)) return String(value);
  return digits ? n.toFixed(digits) : number.format(n);
}

/** `mtta_minutes` -> "MTTA (minutes)", `open_incidents` -> "Open incidents". */
export function humanLabel(key: string): string {
  const acronyms: Record<string, string> = { mtta: "MTTA", mttr: "MTTR", mttd: "MTTD", eps: "EPS", sla: "SLA", id: "ID", tlp: "TLP", ip: "IP" };
  const words = key.split(/[_\s]+/).filter(Boolean);
  const unit = words.length > 1 && ["minutes", "hours", "seconds", "percent", "pct"].includes(words[words.length - 1]) ? words.pop() : undefined;
  const text = words.map((w, i) => acronyms[w.toLowerCase()] ?? (i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w)).join(" ");
  return unit ? `${text} (${unit === "pct" ? "%" : unit})` : text;
}

export function formatValue(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "Yes" : "No";
  if (typeof value === "number") return formatNumber(value, Number.isInteger(value) ? 0 : 2);
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) return formatDate(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
