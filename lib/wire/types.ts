// TypeScript shapes of the decoded messages (see proto/). Every field is optional, as in
// proto2; the validators in messages.ts narrow them.

export interface RsaMessage {
  publicModulus?: Uint8Array; publicExponent?: Uint8Array; privateExponent?: Uint8Array;
  privateP?: Uint8Array; privateQ?: Uint8Array; privateDp?: Uint8Array; privateDq?: Uint8Array; privateIqmp?: Uint8Array;
}
export interface PointMessage { x?: Uint8Array; y?: Uint8Array }
export interface EccMessage {
  curveName?: string; curveP?: Uint8Array; curveA?: Uint8Array; curveB?: Uint8Array;
  basePoint?: PointMessage; publicPoint?: PointMessage; orderOfBasePoint?: Uint8Array; privateMultiplier?: Uint8Array;
}
export interface KeyMessage {
  keyName?: string; keyType?: string; keyFormat?: string; rsaKey?: RsaMessage; eccKey?: EccMessage;
  secretKeyBits?: Uint8Array; certificate?: Uint8Array; otherKeyFormats?: Uint8Array;
  notBefore?: string; notAfter?: string; snpTcbVersion?: number; snpChipid?: Uint8Array;
}
export interface Property { propertyName?: string; valueType?: string; comparator?: string; stringValue?: string; intValue?: number }
export interface Platform { platformType?: string; attestKey?: KeyMessage; props?: { props?: Property[] }; hasKey?: boolean }
export interface EntityMessage {
  entityType?: string; key?: KeyMessage; measurement?: Uint8Array;
  platformEnt?: Platform; environmentEnt?: { thePlatform?: Platform; theMeasurement?: Uint8Array };
}
export interface VseClause { subject?: EntityMessage; verb?: string; object?: EntityMessage; clause?: VseClause }
export interface ClaimMessage {
  claimFormat?: string; claimDescriptor?: string; notBefore?: string; notAfter?: string; serializedClaim?: Uint8Array;
}
export interface SignedClaimMessage {
  serializedClaimMessage?: Uint8Array; signingKey?: KeyMessage; signingAlgorithm?: string; signature?: Uint8Array;
}
export interface SignedClaimSequence { claims?: SignedClaimMessage[] }
export interface AttestationUserData {
  enclaveType?: string; time?: string; enclaveKey?: KeyMessage; policyKey?: KeyMessage; sessionBinding?: Uint8Array;
}
export interface VseAttestationReportInfo {
  enclaveType?: string; verifiedMeasurement?: Uint8Array; notBefore?: string; notAfter?: string; userData?: Uint8Array;
}
export interface SignedReport {
  reportFormat?: string; report?: Uint8Array; signingKey?: KeyMessage; signingAlgorithm?: string; signature?: Uint8Array;
}
export interface Evidence { evidenceType?: string; serializedEvidence?: Uint8Array }
export interface EvidencePackage { proverType?: string; enclaveType?: string; factAssertion?: Evidence[] }
export interface TrustRequestMessage {
  requestingEnclaveTag?: string; providingEnclaveTag?: string; submittedEvidenceType?: string;
  purpose?: string; support?: EvidencePackage;
}
export interface TrustResponseMessage {
  status?: string; requestingEnclaveTag?: string; providingEnclaveTag?: string; artifact?: Uint8Array; errorCode?: string;
}
export interface CryptstoreEntry {
  tag?: string; type?: string; version?: number; timeEntered?: Uint8Array; blob?: Uint8Array; exportable?: boolean;
}
export interface Cryptstore { entries?: CryptstoreEntry[] }
export interface ScryptParams { logN?: number; r?: number; p?: number; salt?: Uint8Array }
export interface CryptstoreProtection {
  kind?: string; scrypt?: ScryptParams; salt?: Uint8Array; platform?: string; wrappedDataKey?: Uint8Array;
}
export interface CryptstoreMetadata { formatVersion?: number; storeId?: Uint8Array; created?: string; protection?: CryptstoreProtection }
export interface CryptstoreBundle { formatVersion?: number; scrypt?: ScryptParams; ciphertext?: Uint8Array }
export interface KeyServiceRequest {
  resourceName?: string; requestType?: string; valueType?: string; version?: number; data?: Uint8Array;
  serializedCredentials?: Uint8Array; expectedVersion?: number; exportable?: boolean;
  challengeNonce?: Uint8Array; challengeSignature?: Uint8Array; listAfter?: string;
}
export interface KeyServiceResponse {
  resourceName?: string; responseType?: string; status?: string; data?: Uint8Array; errorCode?: string; version?: number; serverTime?: string;
}
export interface CertChain { certCerts?: Uint8Array[] }
export interface KeyServiceResourceInfo {
  resourceName?: string; version?: number; valueType?: string; timeEntered?: string; exportable?: boolean; size?: number;
}
export interface KeyServiceList { resources?: KeyServiceResourceInfo[]; nextAfter?: string; deleted?: number }
