using System.Diagnostics;
using System.Text.RegularExpressions;
using Diffuse.Tests.Distributed;

namespace Diffuse.Tests.Serving;

/// <summary><c>diffuse serve</c> as a process: the startup line, and a graceful stop on SIGTERM.</summary>
[Collection("Serving")]
public class ServeProcessTests(ServerFixture fixture)
{
    /// <summary>Starts <c>diffuse serve</c> on a free port and returns the process and its address (from the startup line).</summary>
    internal static async Task<(Process Process, Uri Address, Task<string> Output)> Start(params string[] args)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet ? dotnet : "dotnet")
        { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { MpiJobs.CliDll, "serve", "--port", "0" }.Concat(args)) info.ArgumentList.Add(a);
        info.Environment["DIFFUSE_THREADS"] = "1";
        var process = Process.Start(info)!;
        _ = process.StandardError.ReadToEndAsync();
        string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(line is not null, "diffuse serve ended without a startup line");
        var match = Regex.Match(line!, @"at (http://\S+)");
        Assert.True(match.Success, line);
        return (process, new Uri(match.Groups[1].Value), process.StandardOutput.ReadToEndAsync());
    }

    [Fact]
    public async Task SigtermLetsRunningRequestsFinishThenExitsZero()
    {
        var (process, address, output) = await Start("--model", fixture.TableModel, "--max-steps", "100000");
        using (process)
        {
            using var client = new HttpClient { BaseAddress = address };
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/models/table/samples")
            {
                Content = ServerInstance.Json(new { count = 2000, sampler = "euler", sigmas = "karras", steps = 4000, stream = true }),
            };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line && !line.StartsWith("event: progress", StringComparison.Ordinal)) { }
            using (var kill = Process.Start("kill", new[] { "-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })) kill.WaitForExit();
            string rest = await reader.ReadToEndAsync();
            Assert.Contains("event: result", rest);
            Assert.True(process.WaitForExit(60_000), "diffuse serve did not stop");
            Assert.Equal(0, process.ExitCode);
            string stdout = await output;
            Assert.Contains("stopping", stdout);
            Assert.Contains("stopped", stdout);
        }
    }
}
