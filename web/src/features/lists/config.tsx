import type { ReactNode } from "react";
import { formatDate, formatNumber } from "../../components/format";

export type Row = Record<string, unknown>;

export interface Column {
  key: string;
  label: string;
  sort?: string;
  render?: (row: Row) => ReactNode;
}

export interface Filter {
  name: string;
  label: string;
  type: "text" | "select" | "date" | "boolean";
  options?: string[];
  multiple?: boolean;
}

export interface ListKind {
  title: string;
  path: string;
  columns: Column[];
  filters: Filter[];
  defaultSort?: string;
  detail?: string;
  /** CSV through the list's own format=csv; XLSX through a dedicated export route. */
  csv?: boolean;
  xlsx?: { path: string; param: string };
}

const date = (key: string) => (row: Row) => formatDate(row[key]);
const num = (key: string) => (row: Row) => formatNumber(row[key]);
const period: Filter[] = [
  { name: "from", label: "From", type: "date" },
  { name: "to", label: "To", type: "date" },
];

export const LISTS: Record<string, ListKind> = {
  offenses: {
    title: "Offenses",
    path: "/tenant/offenses/",
    detail: "/offenses",
    csv: true,
    columns: [
      { key: "offense_id", label: "Offense", sort: "offense_id" },
      { key: "description", label: "Description", render: (r) => String(r.description ?? "").split("\n")[0] },
      { key: "status", label: "Status", sort: "status" },
      { key: "severity", label: "Severity", sort: "severity" },
      { key: "magnitude", label: "Magnitude", sort: "magnitude" },
      { key: "event_count", label: "Events", sort: "event_count", render: num("event_count") },
      { key: "assigned_to", label: "Assigned to" },
      { key: "start_time", label: "Started", sort: "start_time", render: date("start_time") },
    ],
    filters: [
      { name: "q", label: "Search", type: "text" },
      { name: "status", label: "Status", type: "select", options: ["OPEN", "HIDDEN", "CLOSED"] },
      { name: "severity_min", label: "Severity at least", type: "select", options: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"] },
      { name: "has_ti_match", label: "Named by threat intel", type: "boolean" },
      ...period,
    ],
  },
  incidents: {
    title: "Incidents",
    path: "/tenant/soar-incidents/",
    detail: "/incidents",
    csv: true,
    xlsx: { path: "/tenant/soar-incidents/download/", param: "file_type" },
    columns: [
      { key: "incident_id", label: "Incident" },
      { key: "name", label: "Name", sort: "name" },
      { key: "priority", label: "Priority", sort: "priority" },
      { key: "severity", label: "Severity", sort: "severity" },
      { key: "status", label: "Status", sort: "status" },
      { key: "owner", label: "Owner" },
      { key: "created", label: "Created", sort: "created", render: date("created") },
      { key: "closed", label: "Closed", sort: "closed", render: date("closed") },
    ],
    filters: [
      { name: "q", label: "Search", type: "text" },
      { name: "status", label: "Status", type: "select", options: ["active", "pending", "closed"] },
      { name: "priority", label: "Priority", type: "select", options: ["P1", "P2", "P3", "P4"] },
      { name: "severity", label: "Severity", type: "select", options: ["critical", "high", "medium", "low", "informational"] },
      { name: "has_ti_match", label: "Named by threat intel", type: "boolean" },
      ...period,
    ],
  },
  tickets: {
    title: "Tickets",
    path: "/tenant/itsm-tickets/",
    detail: "/tickets",
    csv: true,
    columns: [
      { key: "ticket_id", label: "Ticket" },
      { key: "subject", label: "Subject", sort: "subject" },
      { key: "status", label: "Status", sort: "status" },
      { key: "priority", label: "Priority", sort: "priority" },
      { key: "is_overdue", label: "Overdue", render: (r) => (r.is_overdue ? "Yes" : "No") },
      { key: "created_time", label: "Created", sort: "created_time", render: date("created_time") },
    ],
    filters: [
      { name: "q", label: "Search", type: "text" },
      { name: "status", label: "Status", type: "select", options: ["Open", "In Progress", "On Hold", "Resolved", "Closed"] },
      { name: "priority", label: "Priority", type: "select", options: ["High", "Medium", "Low", "Normal"] },
      { name: "is_overdue", label: "Overdue only", type: "boolean" },
      { name: "has_ti_match", label: "Named by threat intel", type: "boolean" },
      ...period,
    ],
  },
  "threat-alerts": {
    title: "Threat alerts",
    path: "/tenant/threat-alerts/",
    detail: "/threat-alerts",
    csv: true,
    columns: [
      { key: "short_id", label: "Alert" },
      { key: "title", label: "Title" },
      { key: "status", label: "Status" },
      { key: "tlp", label: "TLP" },
      { key: "published_time", label: "Published", render: date("published_time") },
    ],
    filters: [
      { name: "q", label: "Search", type: "text" },
      { name: "tlp", label: "TLP", type: "select", options: ["RED", "AMBER", "GREEN", "WHITE", "CLEAR"] },
      ...period,
    ],
  },
  assets: {
    title: "Assets",
    path: "/tenant/assets/",
    csv: true,
    xlsx: { path: "/tenant/assets/export/", param: "file_type" },
    columns: [
      { key: "name", label: "Name", sort: "name" },
      { key: "type_name", label: "Type" },
      { key: "status", label: "Status", sort: "status" },
      { key: "average_eps", label: "Average EPS", sort: "average_eps", render: num("average_eps") },
      { key: "last_event_time", label: "Last event", sort: "last_event_time", render: date("last_event_time") },
    ],
    filters: [
      { name: "q", label: "Search", type: "text" },
      { name: "enabled", label: "Enabled only", type: "boolean" },
    ],
  },
};
