//! The one place this crate calls into a PKCS#11 module itself, for `C_GetTokenInfo`.
//!
//! `cryptoki` refuses a `CK_TOKEN_INFO` whose `utcTime` is not `YYYYMMDDhhmmss`; openCryptoki
//! 3.8 (the version Debian 12 ships, and the stack in front of IBM's HSMs) writes `hh:mm:ss`,
//! so through `cryptoki` such tokens could be neither listed nor selected by label. seald never
//! needs the token's clock, so it reads the structure directly and ignores `utcTime`.
#![allow(unsafe_code)]

use std::path::Path;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, Rv};
use cryptoki_sys::{CKR_OK, CK_FUNCTION_LIST_PTR, CK_RV, CK_SLOT_ID, CK_TOKEN_INFO};

type GetTokenInfo = unsafe extern "C" fn(CK_SLOT_ID, *mut CK_TOKEN_INFO) -> CK_RV;
type GetFunctionList = unsafe extern "C" fn(*mut CK_FUNCTION_LIST_PTR) -> CK_RV;

/// `C_GetTokenInfo` of one loaded module.
pub(crate) struct TokenInfoReader {
    get_token_info: GetTokenInfo,
    // Keeps the module mapped while `get_token_info` may be called; declared last so it is
    // dropped after the pointer.
    _library: libloading::Library,
}

impl std::fmt::Debug for TokenInfoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenInfoReader")
    }
}

impl TokenInfoReader {
    /// Takes the function from the module at `path`, which `cryptoki` has already loaded and
    /// initialized from the same path.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        // SAFETY: the module is already loaded in this process (cryptoki opened the same
        // path), so this only takes another reference to it; its initializers ran already.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        // SAFETY: every PKCS#11 module exports C_GetFunctionList with this signature
        // (PKCS#11 2.40 §5.2).
        let get_list: libloading::Symbol<'_, GetFunctionList> =
            unsafe { library.get(b"C_GetFunctionList\0") }.map_err(|e| e.to_string())?;
        let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        // SAFETY: the out-pointer points to a local the call fills in.
        let rv = unsafe { get_list(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!("C_GetFunctionList returned {rv:#x}"));
        }
        // SAFETY: `list` points to the module's own function table, which stays valid while
        // the module is loaded (we hold `library`).
        let get_token_info = unsafe { (*list).C_GetTokenInfo }
            .ok_or_else(|| "the module has no C_GetTokenInfo".to_owned())?;
        Ok(TokenInfoReader {
            get_token_info,
            _library: library,
        })
    }

    /// Calls `C_GetTokenInfo`. The caller holds a module access, so the module is initialized.
    pub(crate) fn read(&self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO, CkError> {
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `info` is a properly sized and aligned CK_TOKEN_INFO owned by this frame;
        // the module writes only into it.
        let rv = unsafe { (self.get_token_info)(slot, &mut info) };
        Rv::from(rv).into_result(Function::GetTokenInfo)?;
        Ok(info)
    }
}
