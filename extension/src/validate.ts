/**
 * Checks of the product settings the dialog can make before saving: the
 * product name, timeout, schedule (cron) and time zone of each trigger, and the
 * JSON fields. Pure functions; the runtime still judges everything at publish.
 */

/** The contract's product name: 1-63 lowercase ASCII letters, digits and dashes, not starting with a dash. */
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const MAX_TIMEOUT = 86400;

export function nameProblem(name: string): string | null {
  return NAME.test(name)
    ? null
    : `Invalid product name "${name}": use 1-63 lowercase ASCII letters, digits and dashes, starting with a letter or digit.`;
}

/** The name a file publishes under when its metadata names none, as `nbmesh publish` derives it. */
export function nameFromPath(path: string): string {
  const file = path.split('/').pop() ?? '';
  return file.replace(/\.[^.]*$/, '').toLowerCase().replace(/_/g, '-');
}

export function timeoutProblem(text: string): string | null {
  const value = text.trim();
  // Number('') is 0 and Number(' 1 ') is 1: only a plain decimal is a number of seconds here.
  const seconds = /^[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : NaN;
  return seconds > 0 && seconds <= MAX_TIMEOUT
    ? null
    : `Timeout must be a number of seconds from above 0 to ${MAX_TIMEOUT}, not "${text}".`;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const CRON_FIELDS: { label: string; min: number; max: number; names?: string[] }[] = [
  { label: 'minute', min: 0, max: 59 },
  { label: 'hour', min: 0, max: 23 },
  { label: 'day of month', min: 1, max: 31 },
  { label: 'month', min: 1, max: 12, names: MONTHS },
  { label: 'day of week', min: 0, max: 7, names: DAYS }
];

/**
 * What is wrong with a five-field cron expression, or null. Plain values,
 * ranges, steps, lists and month/day names are checked against each field's
 * bounds; croniter's extensions (`L`, `#`, `?`) are left to the runtime.
 */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    return `Schedule "${expression}" must have five fields (minute hour day-of-month month day-of-week), not ${fields.length}.`;
  }
  for (let index = 0; index < 5; index++) {
    const problem = cronFieldProblem(fields[index], CRON_FIELDS[index]);
    if (problem) {
      return `Schedule "${expression}": ${problem}`;
    }
  }
  return null;
}

function cronFieldProblem(field: string, spec: (typeof CRON_FIELDS)[number]): string | null {
  if (/[L#?]/i.test(field) && /^[0-9A-Za-z*?#/,-]+$/.test(field)) {
    return null;
  }
  const value = (text: string): number | null => {
    if (/^[0-9]{1,2}$/.test(text)) {
      return Number(text);
    }
    const named = spec.names?.indexOf(text.toLowerCase()) ?? -1;
    return named < 0 ? null : named + (spec.names === MONTHS ? 1 : 0);
  };
  for (const item of field.split(',')) {
    const match = /^([^/]+)(?:\/([0-9]+))?$/.exec(item);
    if (!match) {
      return `the ${spec.label} field "${field}" is not a cron field.`;
    }
    const [, range, step] = match;
    if (step !== undefined && Number(step) < 1) {
      return `the ${spec.label} step in "${item}" must be at least 1.`;
    }
    if (range === '*') {
      continue;
    }
    const bounds = range.split('-');
    if (bounds.length > 2) {
      return `the ${spec.label} field "${field}" is not a cron field.`;
    }
    for (const bound of bounds) {
      const number = value(bound);
      if (number === null) {
        return `the ${spec.label} "${bound}" is not a number${spec.names ? ' or a name' : ''}.`;
      }
      if (number < spec.min || number > spec.max) {
        return `the ${spec.label} ${number} is out of range ${spec.min}-${spec.max}.`;
      }
    }
  }
  return null;
}

/** Whether the browser knows an IANA time zone (the runtime uses the same database). */
export function timezoneProblem(zone: string): string | null {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return null;
  } catch {
    return `Unknown time zone "${zone}": use an IANA name such as UTC or Europe/Paris.`;
  }
}

/** Parse a JSON field; `label` names it in the problem. */
export function parseJson(label: string, text: string): { value?: unknown; problem?: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (reason) {
    return { problem: `${label} is not valid JSON: ${(reason as Error).message}` };
  }
}
