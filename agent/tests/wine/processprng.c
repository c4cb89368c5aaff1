/* Test-environment stand-in for bcryptprimitives.dll, which Wine 8.0 lacks.
 *
 * Rust >= 1.78 Windows binaries take their randomness from ProcessPrng in bcryptprimitives.dll;
 * without it Wine stops the process at load (exit code 53, no message). This DLL exports
 * ProcessPrng on top of RtlGenRandom (advapi32 SystemFunction036), which Wine has. Built by
 * build-shim at test time and placed beside the test .exe; never shipped: real Windows has the
 * genuine DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
