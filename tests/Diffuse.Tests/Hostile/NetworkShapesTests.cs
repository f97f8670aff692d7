using Diffuse.Models;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// The shapes a configuration promises without building its network (checked against a weights file's header before
/// anything is allocated) are exactly the shapes of the network it builds.
/// </summary>
public class NetworkShapesTests
{
    public static TheoryData<NetworkConfig> Configs() => new()
    {
        new MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8),
        new MlpConfig(5, Width: 12, Depth: 3, TimeEmbedding: 6, OutputMultiplier: 2),
        new UNetConfig { Channels = 1, BaseChannels = 8, ChannelMultipliers = [1], BlocksPerLevel = 1, AttentionResolutions = [], Heads = 1, NumClasses = 2 },
        new UNetConfig { Channels = 3, BaseChannels = 8, ChannelMultipliers = [1, 2, 2], BlocksPerLevel = 2, AttentionResolutions = [2], Heads = 2 },
        new UNetConfig { Channels = 2, BaseChannels = 4, ChannelMultipliers = [2, 1, 3], BlocksPerLevel = 1, AttentionResolutions = [1, 4], Heads = 1,
            ScaleShiftNorm = true, TimeEmbedding = 12, NumClasses = 3, OutputChannelsMultiplier = 2 },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void PromisedShapesAreTheBuiltNetworksShapes(NetworkConfig config)
    {
        config.Validate();
        using var network = config.Create(50);
        var built = network.state_dict().Select(p => $"{p.Key} [{string.Join(", ", p.Value.shape)}]").Order(StringComparer.Ordinal).ToArray();
        var promised = config.StateShapes().Select(p => $"{p.Key} [{string.Join(", ", p.Shape)}]").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(built, promised);
        Assert.Equal(network.parameters().Sum(p => p.numel()), config.ParameterCount());
    }

    [Fact]
    public void HugeNetworksAreRefusedByTheirParameterCountBeforeAnythingIsBuilt()
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var mlp = Assert.Throws<DiffuseException>(() => new MlpConfig(2, Width: 60_000, Depth: 1_000).Validate());
        Assert.Contains("parameters, above the limit of 1,073,741,824", mlp.Message);
        var unet = Assert.Throws<DiffuseException>(() => new UNetConfig { Channels = 3, BaseChannels = 4096, ChannelMultipliers = [1, 2, 4], BlocksPerLevel = 8 }.Validate());
        Assert.Contains("the U-Net", unet.Message);
        Assert.Contains("MlpConfig.Width is 1,000,000,000, above the limit of 65,536", Assert.Throws<DiffuseException>(() => new MlpConfig(2, Width: 1_000_000_000).Validate()).Message);
        Assert.True(started.ElapsedMilliseconds < 2000, $"{started.ElapsedMilliseconds} ms");
    }
}
