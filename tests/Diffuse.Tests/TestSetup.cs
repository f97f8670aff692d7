using System.Runtime.CompilerServices;

namespace Diffuse.Tests;

internal static class TestSetup
{
    /// <summary>One libtorch thread for every test: on small machines, and whenever another process competes for the
    /// cores, two threads are several times slower for these op sizes (see docs/benchmarks.md).</summary>
    /// <remarks>The commands run in-process set their own default (every core for image models) unless DIFFUSE_THREADS says otherwise.</remarks>
    [ModuleInitializer]
    internal static void SingleThread()
    {
        TorchSharp.torch.set_num_threads(1);
        Environment.SetEnvironmentVariable("DIFFUSE_THREADS", "1");
    }
}
