/** The signed-in user and what the navigation shows for their roles. */
import type { User } from './api/platform';
import { store } from './store';

export const user = store<User | null | undefined>(undefined); // undefined: not checked yet

export type PageId = 'overview' | 'monitoring' | 'explore' | 'logs' | 'events' | 'alerting' | 'platform';

/** True when the user holds only login/viewer roles (TKEStack's "tenant" / viewer). */
const readOnly = (u: User) => !u.is_admin && u.roles.length > 0 && u.roles.every((r) => /login|viewer|view/i.test(r));

/** Pages the user may open. Admins see everything; viewers see read-only pages. */
export function canSee(u: User, page: PageId): boolean {
  if (u.is_admin) return true;
  if (readOnly(u)) return ['overview', 'monitoring', 'logs', 'events'].includes(page);
  return true;
}

/** Platform administration tabs (users, roles, policies) are for admins only. */
export const canAdminister = (u: User) => u.is_admin;
/** Whether the user may change alerting objects. */
export const canEditAlerting = (u: User) => u.is_admin || !readOnly(u);
