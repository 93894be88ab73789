import { authorize, identityHeaders, readClaim, claimStrings, type Identity } from './index.js';
import type { Access } from '../../lib/api/types.js';

const id = (claims: Record<string, unknown>, sub = 'u1'): Identity => ({ subject: sub, claims, via: 'bearer' });
const student = id({ roles: ['student'], scope: 'api:read' }, 'student');
const teacher = id({ roles: ['teacher'], scope: 'api:read api:write' }, 'teacher');

// The seed's example: students may call get_grades, only teachers may call set_grades.
const getGrades: Access = { mode: 'restricted', roles: ['student', 'teacher'] };
const setGrades: Access = { mode: 'restricted', roles: ['teacher'] };

describe('authorize: the grades matrix', () => {
  test.each([
    ['student', student, getGrades, 'allow'],
    ['student', student, setGrades, 'forbidden'],
    ['teacher', teacher, getGrades, 'allow'],
    ['teacher', teacher, setGrades, 'allow'],
    ['anonymous', null, getGrades, 'unauthenticated'],
    ['anonymous', null, setGrades, 'unauthenticated'],
    ['anonymous', null, { mode: 'public' }, 'allow'],
    ['anonymous', null, { mode: 'authenticated' }, 'unauthenticated'],
    ['student', student, { mode: 'authenticated' }, 'allow'],
  ] as const)('%s on %j → %s', (_n, who, access, want) => {
    expect(authorize(who, access, {})).toBe(want);
  });
});

describe('authorize: scopes, groups, claim paths', () => {
  test('all listed scopes must be present (space-separated string)', () => {
    expect(authorize(teacher, { mode: 'restricted', scopes: ['api:write'] }, {})).toBe('allow');
    expect(authorize(student, { mode: 'restricted', scopes: ['api:write'] }, {})).toBe('forbidden');
    expect(authorize(teacher, { mode: 'restricted', scopes: ['api:read', 'api:write'] }, {})).toBe('allow');
    expect(authorize(student, { mode: 'restricted', scopes: ['api:read', 'api:write'] }, {})).toBe('forbidden');
  });
  test('scopes as an array under a custom claim (scp)', () => {
    const az = id({ scp: ['a', 'b'] });
    expect(authorize(az, { mode: 'restricted', scopes: ['a', 'b'] }, { scopesClaim: 'scp' })).toBe('allow');
    expect(authorize(az, { mode: 'restricted', scopes: ['a', 'c'] }, { scopesClaim: 'scp' })).toBe('forbidden');
  });
  test('roles AND scopes: role matches but scope missing → forbidden', () => {
    const a: Access = { mode: 'restricted', roles: ['teacher'], scopes: ['api:write'] };
    expect(authorize(teacher, a, {})).toBe('allow');
    expect(authorize(id({ roles: ['teacher'], scope: 'api:read' }), a, {})).toBe('forbidden');
  });
  test('nested role claim (Keycloak realm_access.roles)', () => {
    const kc = id({ realm_access: { roles: ['teacher'] } });
    expect(authorize(kc, setGrades, { rolesClaim: 'realm_access.roles' })).toBe('allow');
    expect(authorize(kc, setGrades, {})).toBe('forbidden');
  });
  test('namespaced claim name containing dots is read literally', () => {
    const a0 = id({ 'https://kea.dev/roles': ['teacher'] });
    expect(authorize(a0, setGrades, { rolesClaim: 'https://kea.dev/roles' })).toBe('allow');
  });
  test('groups: any listed group', () => {
    const g = id({ groups: ['staff'] });
    expect(authorize(g, { mode: 'restricted', groups: ['staff', 'x'] }, {})).toBe('allow');
    expect(authorize(g, { mode: 'restricted', groups: ['x'] }, {})).toBe('forbidden');
    expect(authorize(id({ cognito: { groups: ['staff'] } }), { mode: 'restricted', groups: ['staff'] }, { groupsClaim: 'cognito.groups' })).toBe('allow');
  });
  test('role OR group satisfies the role/group part', () => {
    const a: Access = { mode: 'restricted', roles: ['teacher'], groups: ['staff'] };
    expect(authorize(id({ groups: ['staff'] }), a, {})).toBe('allow');
    expect(authorize(id({ roles: ['teacher'] }), a, {})).toBe('allow');
    expect(authorize(id({ roles: ['student'], groups: ['class-a'] }), a, {})).toBe('forbidden');
  });
  test('restricted with nothing listed fails closed', () => {
    expect(authorize(teacher, { mode: 'restricted' }, {})).toBe('forbidden');
  });
  test('no prototype walking, non-array junk ignored', () => {
    expect(readClaim({}, 'constructor')).toBeUndefined();
    expect(readClaim({ a: {} }, 'a.__proto__')).toBeUndefined();
    expect(authorize(id({ roles: 'teacher' }), setGrades, {})).toBe('allow'); // single string role
    expect(authorize(id({ roles: [1, { teacher: true }] }), setGrades, {})).toBe('forbidden');
    expect(claimStrings(' a  b ', true)).toEqual(['a', 'b']);
  });
});

describe('identityHeaders', () => {
  test('user, roles, groups, scopes, auth kind', () => {
    const h = identityHeaders({ subject: 'teacher', claims: { roles: ['teacher', 'admin'], groups: ['staff'], scope: 'openid api:read' }, via: 'session' });
    expect(h).toEqual({
      'x-kea-user': 'teacher',
      'x-kea-roles': 'teacher,admin',
      'x-kea-groups': 'staff',
      'x-kea-scopes': 'openid api:read',
      'x-kea-auth': 'session',
    });
  });
  test('header-unsafe characters are percent-encoded (no header injection)', () => {
    const h = identityHeaders(id({ roles: ['a\r\nx-evil: 1', 'é'] }, 'bob\nx: y'));
    for (const v of Object.values(h)) expect(v).toMatch(/^[\x20-\x7e]*$/);
    expect(h['x-kea-user']).toBe('bob%0Ax: y');
    expect(h['x-kea-roles']).toBe('a%0D%0Ax-evil: 1,%C3%A9');
  });
  test('memoised per identity, respects claim paths', () => {
    const i = id({ realm_access: { roles: ['r1'] }, roles: ['r0'] });
    expect(identityHeaders(i)).toBe(identityHeaders(i));
    expect(identityHeaders(i, { rolesClaim: 'realm_access.roles' })['x-kea-roles']).toBe('r1');
    expect(identityHeaders(null)).toEqual({});
  });
});
