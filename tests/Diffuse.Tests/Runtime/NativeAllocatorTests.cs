using Diffuse.Runtime;
using static TorchSharp.torch;

namespace Diffuse.Tests.Runtime;

public class NativeAllocatorTests
{
    [Fact]
    public void KeepingFreedMemoryIsAcceptedOnLinuxAndLargeTensorsStillWork()
    {
        Assert.Equal(OperatingSystem.IsLinux(), NativeAllocator.KeepFreedMemory());
        // Blocks above glibc's 32 MiB mmap limit now come from the heap: allocate, fill, free and reuse a few.
        for (int i = 0; i < 3; i++)
        {
            using var scope = NewDisposeScope();
            var big = full(new long[] { 12_000_000 }, (float)i); // 48 MB
            Assert.Equal(12_000_000f * i, big.sum().item<float>(), 1e-3f * 12_000_000f);
        }
    }
}
